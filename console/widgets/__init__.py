"""The console's own widgets: small, each showing one thing the dashboard or a screen needs."""
