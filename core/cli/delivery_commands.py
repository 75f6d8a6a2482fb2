"""``cadence deliver``: delivery workers and the HTTP API."""
