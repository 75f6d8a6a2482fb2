"""What the scheduler did and who runs it, kept in the store for the console and the CLI.

Every job execution is a ``job_runs`` row, written ``running`` when it starts
and ``ok`` or ``failed`` (with the error) when it ends, so a job that is
running now shows as such on every machine. Every ``cadence run`` process
writes a heartbeat to ``scheduler_nodes``; the leader's row also lists its
jobs with their next fire times.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.db import Store
from core.db.dialect import backend_of, upsert
from core.db.outage import Outage, until_back
from core.models import JobRun, SchedulerNode

logger = logging.getLogger(__name__)

Counts = Mapping[str, int]
_ERROR_CHARS = 4000


@dataclass(frozen=True)
class JobRecord:
    """One job execution as recorded."""

    id: int
    job: str
    node: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    counts: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class NodeStatus:
    """One ``cadence run`` process as its heartbeat describes it."""

    node: str
    role: str
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age: timedelta
    jobs: dict[str, Any]
    """Job name -> next fire time (ISO 8601), on the leader."""


async def record_job_run(
    store: Store, job: str, node: str, work: Callable[[], Awaitable[Counts | None]]
) -> JobRecord | None:
    """Run ``work`` as an execution of ``job``, recorded from start to end.

    ``work`` returns its counts, or None when it found nothing to do: such
    executions (the frequent request tick, mostly) leave no row behind. An
    exception is recorded with its traceback and raised again. Once the row
    exists, its end is recorded even if the database was away by then (the
    recording waits for it to come back), so no execution stays ``running``.
    """
    started = clock.now()
    outage = Outage(logger, f"recording the end of job {job}")
    async with store.transaction() as session:
        row = JobRun(job=job, node=node, started_at=started, status="running", counts={})
        session.add(row)
        await session.flush()
        run_id = row.id
    try:
        counts = await work()
    except asyncio.CancelledError:
        await _finish(store, run_id, "cancelled", {}, "stopped before it finished")
        raise
    except Exception as error:
        text = "".join(traceback.format_exception_only(error)).strip()
        detail = traceback.format_exc()[-_ERROR_CHARS:]
        error_text = f"{text}\n\n{detail}"[:_ERROR_CHARS]
        await until_back(lambda: _finish(store, run_id, "failed", {}, error_text), outage)
        raise
    if counts is None:

        async def forget() -> None:
            async with store.transaction() as session:
                await session.execute(delete(JobRun).where(JobRun.id == run_id))

        await until_back(forget, outage)
        return None
    return await until_back(lambda: _finish(store, run_id, "ok", dict(counts), None), outage)


async def _finish(
    store: Store, run_id: int, status: str, counts: dict[str, int], error: str | None
) -> JobRecord:
    async with store.transaction() as session:
        await session.execute(
            update(JobRun)
            .where(JobRun.id == run_id)
            .values(finished_at=clock.now(), status=status, counts=counts, error=error)
        )
        row = await session.get_one(JobRun, run_id)
        return _record(row)


async def recent_job_runs(
    session: AsyncSession, *, limit: int = 50, job: str | None = None, failed_only: bool = False
) -> list[JobRecord]:
    """The latest job executions, newest first."""
    query = select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(limit)
    if job is not None:
        query = query.where(JobRun.job == job)
    if failed_only:
        query = query.where(JobRun.status == "failed")
    return [_record(row) for row in (await session.scalars(query)).all()]


async def running_job_runs(session: AsyncSession, *, limit: int = 20) -> list[JobRecord]:
    """The executions under way now (``running`` on whichever node), longest running
    first: what the console shows as in progress."""
    query = (
        select(JobRun)
        .where(JobRun.status == "running")
        .order_by(JobRun.started_at, JobRun.id)
        .limit(limit)
    )
    return [_record(row) for row in (await session.scalars(query)).all()]


async def interrupt_orphaned_job_runs(store: Store, leader: str) -> int:
    """Mark as ``interrupted`` the executions still ``running`` on other nodes: only the
    leader runs jobs, so a new leader finds there only what its dead predecessor left."""
    async with store.transaction() as session:
        result = await session.execute(
            update(JobRun)
            .where(JobRun.status == "running", JobRun.node != leader)
            .values(
                status="interrupted",
                finished_at=clock.now(),
                error="its node stopped while it ran (a new leader took over)",
            )
            .returning(JobRun.id)
        )
        return len(result.all())


async def forget_job_runs(store: Store, before: datetime) -> int:
    """Delete the job runs that started before ``before``; how many went."""
    async with store.transaction() as session:
        result = await session.execute(
            delete(JobRun).where(JobRun.started_at < before).returning(JobRun.id)
        )
        return len(result.all())


async def write_heartbeat(
    store: Store, node: str, role: str, started_at: datetime, jobs: Mapping[str, str]
) -> None:
    """This node is alive now, in ``role``; on the leader, ``jobs`` and their next times."""
    now = clock.now()
    values = {"role": role, "heartbeat_at": now, "jobs": dict(jobs)}
    async with store.transaction() as session:
        statement = upsert(backend_of(session), SchedulerNode.__table__).values(
            node=node, started_at=started_at, **values
        )
        await session.execute(statement.on_conflict_do_update(index_elements=["node"], set_=values))


async def remove_node(store: Store, node: str) -> None:
    """A node that stops cleanly takes its heartbeat away."""
    async with store.transaction() as session:
        await session.execute(delete(SchedulerNode).where(SchedulerNode.node == node))


async def scheduler_nodes(session: AsyncSession, now: datetime) -> list[NodeStatus]:
    """Every node with a heartbeat, the leader first, then the freshest."""
    rows: Sequence[SchedulerNode] = (
        await session.scalars(select(SchedulerNode).order_by(SchedulerNode.heartbeat_at.desc()))
    ).all()
    nodes = [
        NodeStatus(
            row.node,
            row.role,
            row.started_at,
            row.heartbeat_at,
            now - row.heartbeat_at,
            dict(row.jobs),
        )
        for row in rows
    ]
    return sorted(nodes, key=lambda node: node.role != "leader")


def _record(row: JobRun) -> JobRecord:
    return JobRecord(
        row.id,
        row.job,
        row.node,
        row.started_at,
        row.finished_at,
        row.status,
        dict(row.counts),
        row.error,
    )
