"""``cadence console --embedded``: the scheduler inside the console's process, when no
node leads already (a laptop, the demo), so one command gives a living program."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from core import clock
from core.db import Store
from core.errors import CadenceError
from core.node import run_node
from core.scheduler.records import scheduler_nodes
from core.settings import Settings

logger = logging.getLogger(__name__)

FRESH_HEARTBEAT_SECONDS = 30.0
"""A leader whose heartbeat is younger than this is running somewhere."""


class EmbeddedNode:
    """A ``cadence run`` node as a task of the console's event loop."""

    def __init__(self, store: Store, settings: Settings, report: Callable[[str], None]) -> None:
        self.store = store
        self.settings = settings
        self.report = report
        """Hears, in words, why the node stopped on its own (the console stays)."""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start_unless_led(self) -> str:
        """Start the node unless a fresh leader runs elsewhere; what happened, in words."""
        async with self.store.reading() as session:
            nodes = await scheduler_nodes(session, clock.now())
        leaders = [
            node
            for node in nodes
            if node.role == "leader"
            and node.heartbeat_age.total_seconds() < FRESH_HEARTBEAT_SECONDS
        ]
        if leaders:
            return f"the scheduler already runs on {leaders[0].node}; not starting another"
        self._task = asyncio.create_task(self._run())
        return "the scheduler runs inside this console"

    async def _run(self) -> None:
        try:
            await run_node(self.store, self.settings, stop=self._stop)
        except CadenceError as error:
            # Another node holds the SQLite database, or the program does not load: the
            # console goes on without a scheduler, and says why.
            logger.error("the embedded scheduler stopped: %s", error)
            self.report(f"the embedded scheduler stopped: {error}")

    async def stop(self) -> None:
        """Stop gracefully: the sends in flight finish and the leases go back."""
        if self._task is None:
            return
        self._stop.set()
        await self._task
