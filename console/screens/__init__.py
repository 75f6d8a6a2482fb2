"""The console's screens, one per mode (see :mod:`console.app`)."""
