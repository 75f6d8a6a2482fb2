"""``cadence check``: a quick health and consistency check for on-call alerting.

Each check reads a little through an index and says ``ok``, ``warn`` or ``fail`` with
what it saw. A monitor runs the command every few minutes and pages on a non-zero
exit: the database does not answer, the schema is behind the code, messages sit in
leases that no live worker renews, due messages wait longer than allowed, or no
``cadence run`` leader has a fresh heartbeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import exists, func, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Store
from core.durations import describe_span
from core.migrations import current_revision, head_revision
from core.models import Campaign, OutboxMessage, OutboxSend
from core.scheduler.records import scheduler_nodes
from core.settings import Settings

Status = Literal["ok", "warn", "fail"]

STALE_HEARTBEAT_SECONDS = 30.0
"""A heartbeat older than this (or than three heartbeat periods, if longer) belongs to a
node that is probably gone: the console marks such nodes the same way."""


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, its verdict, what it saw (for people) and the number it
    measured (for monitors), if any."""

    name: str
    status: Status
    detail: str
    value: float | None = None


@dataclass(frozen=True)
class CheckLimits:
    """When a reading becomes a failure."""

    max_due: int | None = None
    """Messages due now and not sent: more than this fails (None: reported only)."""
    max_wait: timedelta = timedelta(hours=1)
    """The oldest due message waiting longer than this fails."""
    scheduler: bool = True
    """Whether a ``cadence run`` leader must be running (off where none is deployed)."""


async def run_checks(
    store: Store, settings: Settings, now: datetime, limits: CheckLimits
) -> list[CheckResult]:
    """Every check, in order; a database that does not answer is the only result."""
    try:
        async with store.reading() as session:
            await session.execute(text("SELECT 1"))
        revision = await current_revision(store)
    except (DBAPIError, SQLAlchemyError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [CheckResult("database", "fail", f"does not answer: {reason}")]
    results = [CheckResult("database", "ok", f"answers ({store.backend})"), _schema(revision)]
    if revision is None:
        return results  # no tables to read
    async with store.reading() as session:
        results.append(await _leases(session, settings, now))
        results.append(await _queue(session, now, limits))
        if limits.scheduler:
            results.append(await _heartbeat(session, settings, now))
    return results


def healthy(results: list[CheckResult]) -> bool:
    return all(result.status != "fail" for result in results)


def _schema(revision: str | None) -> CheckResult:
    head = head_revision()
    if revision == head:
        return CheckResult("schema", "ok", f"at the latest revision {head}")
    state = "has no tables" if revision is None else f"is at {revision}"
    return CheckResult("schema", "fail", f"{state}, not {head}: run `cadence db upgrade`")


async def _leases(session: AsyncSession, settings: Settings, now: datetime) -> CheckResult:
    """Leases that ran out over a lease period ago: a live worker renews its leases three
    times per period and takes over a dead one's as soon as they run out, so such rows
    mean that no worker serves their channel. A row whose send was recorded (SQLite's
    ``outbox_sends``, folded into the row by the next worker) went out, and is not stuck."""
    lease = timedelta(seconds=settings.delivery.lease_seconds)
    recorded = exists().where(OutboxSend.outbox_id == OutboxMessage.id)
    stuck = await session.scalar(
        select(func.count()).where(
            OutboxMessage.state == "sending",
            OutboxMessage.next_attempt_at < now - lease,
            ~recorded,
        )
    )
    if stuck:
        return CheckResult(
            "leases",
            "fail",
            f"{stuck:,} messages in leases that ran out over {describe_span(lease)} ago: "
            "no delivery worker takes them back (is `cadence run` or `cadence deliver` up?)",
            stuck,
        )
    return CheckResult("leases", "ok", "no stuck lease", 0)


async def _queue(session: AsyncSession, now: datetime, limits: CheckLimits) -> CheckResult:
    """Messages of active campaigns that may go out now, and how long the oldest waits
    (paused campaigns hold theirs on purpose; quiet hours and retries are not due yet)."""
    held = select(Campaign.id).where(Campaign.status != "active")
    due_queued = (
        select(func.count(), func.min(OutboxMessage.due_at))
        .where(OutboxMessage.state == "queued", OutboxMessage.due_at <= now)
        .where(OutboxMessage.campaign_id.not_in(held))
    )
    due_retries = (
        select(func.count(), func.min(OutboxMessage.next_attempt_at))
        .where(OutboxMessage.state == "retry", OutboxMessage.next_attempt_at <= now)
        .where(OutboxMessage.campaign_id.not_in(held))
    )
    queued, oldest_queued = (await session.execute(due_queued)).one()
    retries, oldest_retry = (await session.execute(due_retries)).one()
    due = int(queued) + int(retries)
    oldest = min((t for t in (oldest_queued, oldest_retry) if t is not None), default=None)
    if due == 0 or oldest is None:
        return CheckResult("queue", "ok", "nothing due waits", 0)
    waited = now - oldest
    detail = f"{due:,} messages due, the oldest for {describe_span(waited)}"
    if waited > limits.max_wait:
        return CheckResult(
            "queue", "fail", f"{detail} (longer than {describe_span(limits.max_wait)})", due
        )
    if limits.max_due is not None and due > limits.max_due:
        return CheckResult("queue", "fail", f"{detail} (more than {limits.max_due:,})", due)
    return CheckResult("queue", "ok", detail, due)


async def _heartbeat(session: AsyncSession, settings: Settings, now: datetime) -> CheckResult:
    stale = timedelta(
        seconds=max(STALE_HEARTBEAT_SECONDS, 3 * settings.scheduler.heartbeat_seconds)
    )
    nodes = await scheduler_nodes(session, now)
    leader = next((node for node in nodes if node.role == "leader"), None)
    if leader is None:
        return CheckResult("heartbeat", "fail", "no `cadence run` leader has a heartbeat")
    age = leader.heartbeat_age
    seconds = age.total_seconds()
    if age > stale:
        return CheckResult(
            "heartbeat",
            "fail",
            f"the leader {leader.node} was last heard of {describe_span(age)} ago",
            seconds,
        )
    gone = [node.node for node in nodes if node.role != "leader" and node.heartbeat_age > stale]
    detail = f"leader {leader.node}, heard of {describe_span(age)} ago"
    if gone:
        return CheckResult(
            "heartbeat",
            "warn",
            f"{detail}; silent for over {describe_span(stale)}: " + ", ".join(gone),
            seconds,
        )
    return CheckResult("heartbeat", "ok", detail, seconds)
