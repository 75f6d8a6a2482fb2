"""The Cadence operations console: one Textual app, one mode per screen.

Each screen is reachable by its key (shown in the footer), from the command palette
(ctrl+p) and from the help screen (?). ``--read-only``, or an operator not among the
settings' ``console.launchers``, hides every action that changes anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Static

from console.context import ConsoleContext
from console.embedded import EmbeddedNode
from console.log_tail import LogTail
from console.screens.base import StoreScreen
from console.screens.help import HelpScreen
from console.screens.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmallScreen


@dataclass(frozen=True)
class ScreenEntry:
    """One screen of the console: its mode, key, title, purpose and where it lives."""

    mode: str
    key: str
    title: str
    purpose: str
    screen: str
    """``module:Class`` under :mod:`console.screens`, imported when first shown."""
    changes_things: bool = False
    """Only for operators who may act (hidden when read-only)."""

    def factory(self) -> Callable[[], Screen[None]]:
        module, name = self.screen.split(":")

        def build() -> Screen[None]:
            screen_class: type[Screen[None]] = getattr(
                importlib.import_module(f"console.screens.{module}"), name
            )
            return screen_class()

        return build


SCREENS: tuple[ScreenEntry, ...] = (
    ScreenEntry(
        "dashboard",
        "d",
        "Dashboard",
        "stage funnel and coverage, automated share, messages, scheduler health, trends",
        "dashboard:DashboardScreen",
    ),
    ScreenEntry(
        "campaigns",
        "c",
        "Campaigns",
        "every campaign with its last run and uplift; pause, resume, run now",
        "campaigns:CampaignsScreen",
    ),
    ScreenEntry(
        "launch",
        "l",
        "Launch",
        "an ad-hoc campaign: audience preview, message preview, confirmation",
        "launch:LaunchScreen",
        changes_things=True,
    ),
    ScreenEntry(
        "scheduler",
        "s",
        "Scheduler",
        "nodes, jobs and their next run, recent job runs, the log",
        "scheduler:SchedulerScreen",
    ),
    ScreenEntry(
        "customers",
        "u",
        "Customers",
        "find a customer: stage history, scores, segments, events, messages",
        "customers:CustomersScreen",
    ),
    ScreenEntry(
        "segments",
        "g",
        "Segments",
        "every segment with its size, trend and the campaigns that use it",
        "segments:SegmentsScreen",
    ),
    ScreenEntry(
        "outbox",
        "o",
        "Outbox",
        "recent messages and their status; open one to read it as sent",
        "outbox:OutboxScreen",
    ),
)


class CadenceConsole(App[None]):
    """The operations console over one store."""

    CSS_PATH = "app.tcss"
    TITLE = "Cadence"
    DEFAULT_MODE: ClassVar[str] = "dashboard"
    # Textual types this one as an instance attribute, so it cannot be a ClassVar here.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("r", "reload", "Reload", show=False),
        Binding("escape", "leave_field", "Leave the field", show=False),
    ]

    def __init__(
        self,
        context: ConsoleContext,
        *,
        embedded: bool = False,
        log_tail: LogTail | None = None,
    ) -> None:
        self.context = context
        self.log_tail = log_tail or LogTail()
        self._embedded = (
            EmbeddedNode(context.store, context.settings, self._scheduler_stopped)
            if embedded
            else None
        )
        self.entries = tuple(
            entry for entry in SCREENS if not (entry.changes_things and context.read_only)
        )
        super().__init__()
        for entry in self.entries:
            self.add_mode(entry.mode, self._styled(entry.factory()))
            self.bind(entry.key, f"show('{entry.mode}')", description=entry.title)
        self.sub_title = "read-only" if context.read_only else context.actor
        self._too_small: TooSmallScreen | None = None

    def _styled(self, build: Callable[[], Screen[None]]) -> Callable[[], Screen[None]]:
        """``build``, its screen marked as styled by the current stylesheet once the app
        shows a screen.

        It is: Textual styles each widget as it is registered. Left unmarked, a mode's new
        screen makes the app parse every stylesheet again and restyle every widget of every
        screen, twice on its first switch and once on each later switch until the screen
        happens to be mounted when the CSS is refreshed (a theme change still restyles it).
        The first screen is left to Textual: it is styled before the theme's colours are in
        the stylesheet, and the refresh is what gives it them.
        """

        def styled() -> Screen[None]:
            started = any(self._screen_stacks.values())
            screen = build()
            if started:
                screen._css_update_count = self._css_update_count
            return screen

        return styled

    async def on_mount(self) -> None:
        if self._embedded is not None:
            self.notify(await self._embedded.start_unless_led(), title="Scheduler")

    def _scheduler_stopped(self, reason: str) -> None:
        self.notify(reason, title="Scheduler", severity="error", timeout=30)

    async def on_unmount(self) -> None:
        if self._embedded is not None:
            await self._embedded.stop()

    # --- screens ----------------------------------------------------------------------

    def action_show(self, mode: str) -> None:
        """Show the screen of ``mode``."""
        self.switch_mode(mode)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.entries, self.context.read_only))

    def action_leave_field(self) -> None:
        """Out of a text field, so that the screens' keys work again."""
        self.screen.set_focus(None)

    def action_reload(self) -> None:
        screen = self.screen
        if isinstance(screen, StoreScreen):
            screen.forget()
            screen.reload()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for entry in self.entries:
            yield SystemCommand(entry.title, entry.purpose, partial(self.switch_mode, entry.mode))
        yield SystemCommand("Help", "Every key and screen", self.action_help)
        yield from super().get_system_commands(screen)

    # --- the database going away and coming back --------------------------------------

    def database_lost(self, error: BaseException) -> None:
        """Raise the banner: the screens keep what they showed and keep trying."""
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        banner = f"Database unreachable, retrying: {first_line}"[:200]
        for shown in self.screen.query("#database-banner"):
            assert isinstance(shown, Static)
            shown.update(banner)
            return
        self.screen.mount(Static(banner, id="database-banner"))

    def database_back(self) -> None:
        for shown in self.screen.query("#database-banner"):
            shown.remove()

    # --- a terminal too small ---------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        """Cover the console with the too-small notice while the terminal is below
        :data:`MIN_WIDTH` x :data:`MIN_HEIGHT`; take it away once it is not."""
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        if small and self._too_small is None:
            self._too_small = TooSmallScreen()
            self.push_screen(self._too_small)
        if self._too_small is not None:
            if small:
                self.call_after_refresh(self._too_small.show_size, width, height)
            else:
                self._too_small.dismiss()
                self._too_small = None
