"""``cadence bounces``: delivery status notifications in, hard bounces suppressed."""
