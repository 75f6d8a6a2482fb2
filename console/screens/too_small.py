"""Shown instead of the console while the terminal is smaller than it needs."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import ModalScreen
from textual.widgets import Static

MIN_WIDTH, MIN_HEIGHT = 80, 24


class TooSmallScreen(ModalScreen[None]):
    """Says how big the terminal is and how big it must be; it goes once it is."""

    def compose(self) -> ComposeResult:
        yield Static(id="too-small")

    def show_size(self, width: int, height: int) -> None:
        self.query_one("#too-small", Static).update(
            f"This terminal is {width}x{height}; Cadence needs at least "
            f"{MIN_WIDTH}x{MIN_HEIGHT}. Make the window larger."
        )
