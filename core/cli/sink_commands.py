"""``cadence sink``: a local SMTP server that keeps what it receives."""
