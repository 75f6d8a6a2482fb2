"""The help screen: every screen's key and purpose, and the keys that work everywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:
    from console.app import ScreenEntry


class HelpScreen(ModalScreen[None]):
    """Keys and screens, over whatever was showing; any of escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", show=True),
    ]

    def __init__(self, entries: tuple[ScreenEntry, ...], read_only: bool) -> None:
        super().__init__()
        self.entries = entries
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for entry in self.entries:
            if entry.changes_things and self.read_only:
                continue
            table.add_row(entry.key, f"[bold]{entry.title}[/]: {entry.purpose}")
        table.add_row("", "")
        table.add_row("ctrl+p", "command palette: every screen and action by name")
        table.add_row("r", "read the store again now")
        table.add_row("?", "this help")
        table.add_row("q", "quit")
        with VerticalScroll(id="help"):
            yield Static("Cadence operations console", classes="panel-title")
            if self.read_only:
                yield Static("read-only: actions that change anything are hidden", id="read-only")
            yield Static(table)
