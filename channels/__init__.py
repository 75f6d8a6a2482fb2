"""Delivery adapters (SMTP, SMS, webhook, in-app, file) behind one small protocol."""
