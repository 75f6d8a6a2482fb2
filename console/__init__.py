"""The Textual operations console: screens, widgets and app.tcss."""
