"""The base of every console screen: it reads the store in a worker, again every few
seconds if it is live, and tells the app when the database is away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy.exc import SQLAlchemyError
from textual import work
from textual.screen import Screen

from console.context import ConsoleContext

if TYPE_CHECKING:
    from console.app import CadenceConsole


class StoreScreen(Screen[None]):
    """A screen whose content comes from the store.

    Subclasses implement :meth:`load` (read, then update their widgets); it runs in an
    exclusive worker when the screen is shown and, if :attr:`LIVE`, every
    ``console.refresh_seconds`` while it is shown. A database error does not end the app:
    the screen keeps what it showed, the app raises its banner, and the next load that
    succeeds lowers it.
    """

    LIVE: ClassVar[bool] = False
    """Read again every ``console.refresh_seconds`` while shown."""
    _loading: bool = False
    """A load is asked for or under way."""
    _loads: int = 0
    """Loads asked for so far; the last one is the one that counts."""

    def __init__(self) -> None:
        super().__init__()
        self.first_load = asyncio.Event()
        """Set once a load has read the store and shown what it read (the console's
        benchmark waits on it)."""

    @property
    def cadence(self) -> CadenceConsole:
        from console.app import CadenceConsole

        assert isinstance(self.app, CadenceConsole)
        return self.app

    @property
    def context(self) -> ConsoleContext:
        return self.cadence.context

    async def load(self) -> None:
        """Read what the screen shows and show it."""
        raise NotImplementedError

    def on_mount(self) -> None:
        if self.LIVE:
            self.set_interval(self.context.settings.console.refresh_seconds, self._tick)

    def _tick(self) -> None:
        """The live refresh: only while the screen is shown, and never over a load still
        running (on a large store, a load may take longer than the interval)."""
        if self.is_current and not self._loading:
            self.reload()

    def on_screen_resume(self) -> None:
        # Textual resumes a mode's screen twice when it is first shown: a load asked for a
        # moment ago reads the store as it is now.
        if not self._loading:
            self.reload()

    def reload(self) -> None:
        """Read again (in the background); a load still running is cancelled first."""
        self._loads += 1
        self._loading = True
        self._load_guarded(self._loads)

    def forget(self) -> None:
        """Drop what the screen keeps from one load to the next, so that the next load reads
        everything again (the operator's reload, ``r``)."""

    @work(exclusive=True, group="load")
    async def _load_guarded(self, number: int) -> None:
        try:
            if await self._guarded(self.load):
                self.first_load.set()
        finally:
            if number == self._loads:  # not a load that a newer one cancelled
                self._loading = False

    def run_guarded(self, action: Callable[[], Awaitable[object]], *, group: str) -> None:
        """Run ``action`` (an operator's action, a poll) in a worker; a database error
        raises the app's banner, as a load's does, instead of ending the app."""
        self.run_worker(self._guarded(action), group=group)

    async def _guarded(self, action: Callable[[], Awaitable[object]]) -> bool:
        """Run ``action``; whether it got through to the database."""
        try:
            await action()
        except (SQLAlchemyError, OSError) as error:
            self.cadence.database_lost(error)
            await self.context.store.reconnect()
            return False
        self.cadence.database_back()
        return True
