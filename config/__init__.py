"""Cadence's default configuration: settings, the default program and templates.

``cadence init DIR`` copies this folder for a user to edit; with no
configuration of their own, Cadence reads these files directly.
"""

from pathlib import Path

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_SETTINGS_FILE = DEFAULT_CONFIG_DIR / "cadence.toml"
