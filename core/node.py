"""``cadence run``: one node, headless: the schedule (if it leads), delivery and the HTTP API.

Every node delivers and serves the API; one node, the leader (see
:mod:`core.scheduler.leader`), also runs the schedule. Each node writes a
heartbeat every ``scheduler.heartbeat_seconds``; a follower tries to take
the lead every ``scheduler.leader_check_seconds``. SIGTERM or SIGINT stops
the node gracefully: no more claims, the sends in flight finish, leases go
back, the running jobs finish, the heartbeat is removed.

A database that is away stops nothing: delivery and the schedule wait for it
(see :mod:`core.db.outage`), the heartbeat keeps trying at its own pace, and
on PostgreSQL, where the lead is a lock held by a session the outage ended,
the node competes for the lead again once the database is back. Each part
logs one line when it starts waiting and one when it resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.exc import SQLAlchemyError

from core import clock
from core.db import Store
from core.db.outage import Outage, database_away
from core.delivery import worker_name
from core.metrics import LEADER
from core.scheduler.leader import Leadership
from core.scheduler.records import remove_node, write_heartbeat
from core.scheduler.service import Scheduler
from core.settings import Settings
from core.workers import run_delivery

logger = logging.getLogger(__name__)


async def run_node(store: Store, settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT (or ``stop``). On SQLite, a second node on the same
    database raises :class:`core.scheduler.leader.NodeAlreadyRunning` at once."""
    stop = stop or asyncio.Event()
    leadership = Leadership(store)
    if store.backend == "sqlite":
        await leadership.try_acquire()
    node = worker_name()
    logger.info("node started", extra={"node": node, "database": store.backend})
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(_lead_when_possible(store, settings, node, leadership, stop))
            tasks.create_task(run_delivery(store, settings, serve_http=True, stop=stop))
    finally:
        await leadership.release()
    logger.info("node stopped", extra={"node": node})


async def _lead_when_possible(
    store: Store, settings: Settings, node: str, leadership: Leadership, stop: asyncio.Event
) -> None:
    """The node's heartbeat, and the schedule while it leads."""
    config = settings.scheduler
    started = clock.now()
    scheduler: Scheduler | None = None
    outage = Outage(logger, "the heartbeat")
    try:
        while not stop.is_set():
            try:
                scheduler = await _follow_leadership(store, settings, node, leadership, scheduler)
                jobs = scheduler.next_fire_times() if scheduler else {}
                role = "leader" if scheduler else "follower"
                LEADER.set(1 if scheduler else 0)
                await write_heartbeat(store, node, role, started, jobs)
            except Exception as error:
                # Keep trying at the heartbeat's pace, and lead again once it is back.
                if database_away(error):
                    outage.lost(error)
                elif isinstance(error, SQLAlchemyError | OSError):
                    logger.exception("heartbeat failed", extra={"node": node})
                else:
                    raise
            else:
                outage.back()
            pause = min(config.heartbeat_seconds, config.leader_check_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
    finally:
        if scheduler is not None:
            await scheduler.stop()
        with contextlib.suppress(SQLAlchemyError, OSError):
            await remove_node(store, node)


async def _follow_leadership(
    store: Store,
    settings: Settings,
    node: str,
    leadership: Leadership,
    scheduler: Scheduler | None,
) -> Scheduler | None:
    """The node's scheduler after checking who leads: started when this node became the
    leader, stopped (None) when it lost the lead."""
    if scheduler is not None:
        if await leadership.still_leader():
            return scheduler
        logger.warning("lost the lead", extra={"node": node})
        await scheduler.stop()
        return None
    if not await leadership.try_acquire():
        return None
    scheduler = Scheduler(store, settings, node)
    await scheduler.start()
    logger.info("leading the schedule", extra={"node": node})
    return scheduler
