"""The outbox as a durable work queue: claim messages under a lease, record what happened.

Every message is a row before it is sent (the planner writes them). A worker
*claims* a batch: the rows move to ``sending`` under its name with a lease
(``next_attempt_at``); it then records each row as ``sent``, ``retry`` (with
the time of the next attempt) or ``failed``. A worker that dies leaves its
rows in ``sending``; once the lease runs out another worker claims them again,
so a restart resumes where it stopped. Recording checks the owner, so a
worker whose lease ran out cannot overwrite the new owner's result.

A send is recorded the moment the server accepts it; on SQLite in ``outbox_sends``
(:func:`record_sent`), folded into its row later, a batch at a time
(:func:`fold_sends`): every claim folds first, and a row with a recorded send
is never taken over, so a sent message is never sent again.

On PostgreSQL several nodes claim at once: ``FOR UPDATE SKIP LOCKED`` hands
each row to one of them. On SQLite ``BEGIN IMMEDIATE`` makes every claim the
only writer while it runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.dialect import backend_of, rowcount
from core.db.direct import DirectConnection
from core.db.types import epoch_micros
from core.models import Campaign, CampaignRun, OutboxMessage, OutboxSend

_OUTBOX = cast(Table, OutboxMessage.__table__)
_SENDS = cast(Table, OutboxSend.__table__)
SENDABLE_STATES = ("queued", "retry", "sending")
"""States of a message that may still go out."""


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """An outbox row this worker holds the lease on."""

    id: int
    run_id: int
    campaign_id: int
    customer_id: int
    channel: str
    category: str
    variant: str
    attempts: int
    """Attempts so far, this one included."""


@dataclass(frozen=True, slots=True)
class Retry:
    """A message to try again at ``at``, or to give up on if it has had its attempts."""

    outbox_id: int
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Settled:
    """A message that will not be tried again: ``failed`` or ``cancelled``, and why."""

    outbox_id: int
    state: str
    reason: str


async def claim_messages(
    session: AsyncSession,
    *,
    channel: str,
    owner: str,
    now: datetime,
    limit: int,
    lease: timedelta,
) -> list[ClaimedMessage]:
    """Take up to ``limit`` messages of ``channel`` that may go out now, oldest first:
    first those whose retry time came or whose previous worker's lease ran out, then
    queued ones. Messages of paused or archived campaigns stay where they are.

    Sends recorded since the last claim are folded into their rows first."""
    await fold_sends(session)
    held = select(Campaign.id).where(Campaign.status != "active")
    outbox = _OUTBOX.c
    returning = (
        select(outbox.id)
        .where(
            outbox.state.in_(("retry", "sending")),
            outbox.next_attempt_at <= now,
            outbox.channel == channel,
            outbox.campaign_id.not_in(held),
            # Sent by a worker whose lease ran out meanwhile, recorded after the fold.
            ~exists().where(_SENDS.c.outbox_id == outbox.id),
        )
        .order_by(outbox.next_attempt_at)
    )
    claimed = await _claim(session, returning, owner, now, limit, lease)
    if len(claimed) < limit:
        queued = (
            select(outbox.id)
            .where(
                outbox.state == "queued",
                outbox.due_at <= now,
                outbox.channel == channel,
                outbox.campaign_id.not_in(held),
            )
            .order_by(outbox.due_at)
        )
        claimed += await _claim(session, queued, owner, now, limit - len(claimed), lease)
    return claimed


async def _claim(
    session: AsyncSession,
    candidates: Select[Any],
    owner: str,
    now: datetime,
    limit: int,
    lease: timedelta,
) -> list[ClaimedMessage]:
    outbox = _OUTBOX.c
    # SQLite renders no FOR UPDATE: its BEGIN IMMEDIATE already made this the only writer.
    chosen = candidates.limit(limit).with_for_update(skip_locked=True)
    statement = (
        update(_OUTBOX)
        .where(outbox.id.in_(chosen.scalar_subquery()))
        .values(
            state="sending",
            lease_owner=owner,
            next_attempt_at=now + lease,
            attempts=outbox.attempts + 1,
        )
        .returning(
            outbox.id,
            outbox.run_id,
            outbox.campaign_id,
            outbox.customer_id,
            outbox.channel,
            outbox.category,
            outbox.variant,
            outbox.attempts,
        )
    )
    rows = (await session.execute(statement)).all()
    return sorted((ClaimedMessage(*row) for row in rows), key=lambda message: message.id)


async def record_sent(
    connection: DirectConnection, owner: str, outbox_ids: Sequence[int], now: datetime
) -> int:
    """Record that the server accepted ``outbox_ids``, in a transaction of their own;
    returns how many this owner still held (the others were taken over after the lease
    ran out and are not touched).

    Delivery calls this for every few messages, through the driver directly (see
    :mod:`core.db.direct`). On SQLite it appends to ``outbox_sends`` (see
    :class:`core.models.OutboxSend`) and :func:`fold_sends` marks the rows sent later;
    on PostgreSQL it marks them sent at once.
    """
    if not outbox_ids:
        return 0
    moment = now.astimezone(UTC).replace(tzinfo=None)
    if connection.backend == "postgresql":
        return await connection.write(_RECORD_SENT_POSTGRESQL, (moment, list(outbox_ids), owner))
    parameters = (epoch_micros(moment), json.dumps(list(outbox_ids)), owner)
    return await connection.write(_RECORD_SENT_SQLITE, parameters)


# "+state": SQLite would otherwise search the state index and read every message in
# flight, rather than look up the few ids.
_RECORD_SENT_SQLITE = (
    "INSERT OR IGNORE INTO outbox_sends (outbox_id, sent_at) SELECT id, ? FROM outbox "
    "WHERE id IN (SELECT value FROM json_each(?)) AND +state = 'sending' AND lease_owner = ?"
)
# PostgreSQL marks the row itself sent, as before outbox_sends: with the log, a killed
# worker's successor sent hundreds of recorded messages again once in CI (cause not found).
_RECORD_SENT_POSTGRESQL = (
    "UPDATE outbox SET state = 'sent', next_attempt_at = NULL, lease_owner = NULL, "
    "error = NULL, sent_at = $1 "
    "WHERE id = ANY($2::bigint[]) AND state = 'sending' AND lease_owner = $3"
)


async def fold_sends(session: AsyncSession) -> int:
    """Mark every recorded send's outbox row ``sent`` at its time and clear the record;
    returns how many. Cheap when there is nothing to fold."""
    outbox, sends = _OUTBOX.c, _SENDS.c
    if backend_of(session) == "postgresql":
        # Exactly the records taken here: another node may be recording more meanwhile.
        taken = delete(_SENDS).returning(sends.outbox_id, sends.sent_at).cte("taken")
        source: Any = taken.c
    else:  # the only writer (BEGIN IMMEDIATE): every record is folded, then cleared
        taken, source = None, sends
    statement = (
        update(_OUTBOX)
        .where(outbox.id == source.outbox_id)
        .values(
            state="sent",
            next_attempt_at=None,
            lease_owner=None,
            error=None,
            sent_at=source.sent_at,
        )
    )
    if taken is not None:
        statement = statement.add_cte(taken)
    folded = rowcount(await session.execute(statement))
    if taken is None:
        await session.execute(delete(_SENDS))
    return folded


async def record_retries(session: AsyncSession, owner: str, retries: Iterable[Retry]) -> None:
    """Put messages back in the queue for a later attempt."""
    rows = [
        {"row_id": retry.outbox_id, "at": retry.at, "reason": retry.reason} for retry in retries
    ]
    if rows:
        await session.execute(
            _row_update(owner).values(
                state="retry",
                next_attempt_at=bindparam("at"),
                lease_owner=None,
                error=bindparam("reason"),
            ),
            rows,
        )


async def record_settled(session: AsyncSession, owner: str, settled: Iterable[Settled]) -> None:
    """Record messages that will not be tried again."""
    rows = [
        {"row_id": item.outbox_id, "new_state": item.state, "reason": item.reason}
        for item in settled
    ]
    if rows:
        await session.execute(
            _row_update(owner).values(
                state=bindparam("new_state"),
                next_attempt_at=None,
                lease_owner=None,
                error=bindparam("reason"),
            ),
            rows,
        )


def _held_by(owner: str) -> tuple[Any, ...]:
    outbox = _OUTBOX.c
    return (outbox.state == "sending", outbox.lease_owner == owner)


def _row_update(owner: str) -> Any:
    return update(_OUTBOX).where(_OUTBOX.c.id == bindparam("row_id"), *_held_by(owner))


async def renew_leases(session: AsyncSession, owner: str, now: datetime, lease: timedelta) -> int:
    """Extend every lease ``owner`` holds to ``now + lease``: a live worker keeps its
    messages however long a slow server makes a batch take; returns how many.

    Rows another transaction has locked are left for the next renewal (PostgreSQL):
    that transaction is settling them (recording or folding their send, recording their
    outcome), and waiting for its locks in another order than it takes them deadlocked
    with a claim folding sends."""
    outbox = _OUTBOX.c
    held = select(outbox.id).where(*_held_by(owner)).with_for_update(skip_locked=True)
    statement = (
        update(_OUTBOX)
        .where(outbox.id.in_(held.scalar_subquery()))
        .values(next_attempt_at=now + lease)
        .returning(outbox.id)
    )
    return len((await session.execute(statement)).all())


async def release_leases(session: AsyncSession, owner: str, now: datetime) -> int:
    """Give back every message ``owner`` still holds, for another worker to take at once
    (a graceful shutdown); returns how many. Its recorded sends are folded first."""
    await fold_sends(session)
    outbox = _OUTBOX.c
    statement = (
        update(_OUTBOX)
        .where(*_held_by(owner))
        .values(state="retry", next_attempt_at=now, lease_owner=None)
        .returning(outbox.id)
    )
    return len((await session.execute(statement)).all())


async def sent_since(session: AsyncSession, channel: str, since: datetime) -> int:
    """Messages of ``channel`` sent after ``since``, plus those being sent right now: what
    an hourly sending limit counts. Sends not yet folded count at their recorded time."""
    outbox, sends = _OUTBOX.c, _SENDS.c
    sent = select(func.count()).where(outbox.channel == channel, outbox.sent_at > since)
    recorded = (
        select(func.count())
        .select_from(_SENDS.join(_OUTBOX, outbox.id == sends.outbox_id))
        .where(outbox.channel == channel, sends.sent_at > since)
    )
    sending = select(func.count()).where(
        outbox.state == "sending",
        outbox.channel == channel,
        ~exists().where(sends.outbox_id == outbox.id),
    )
    counts = [int((await session.execute(query)).scalar_one()) for query in (sent, recorded)]
    return sum(counts) + int((await session.execute(sending)).scalar_one())


async def oldest_sent_since(
    session: AsyncSession, channel: str, since: datetime
) -> datetime | None:
    """When the earliest send of ``channel`` after ``since`` happened: the window frees up
    one message an hour after it."""
    outbox, sends = _OUTBOX.c, _SENDS.c
    folded = select(func.min(outbox.sent_at)).where(
        outbox.channel == channel, outbox.sent_at > since
    )
    recorded = (
        select(func.min(sends.sent_at))
        .select_from(_SENDS.join(_OUTBOX, outbox.id == sends.outbox_id))
        .where(outbox.channel == channel, sends.sent_at > since)
    )
    times = [(await session.execute(query)).scalar_one_or_none() for query in (folded, recorded)]
    return min((time for time in times if time is not None), default=None)


async def waiting_messages(session: AsyncSession, channels: Sequence[str] | None = None) -> int:
    """Messages that may still go out (now or later)."""
    outbox = _OUTBOX.c
    query = select(func.count()).where(outbox.state.in_(SENDABLE_STATES))
    if channels is not None:
        query = query.where(outbox.channel.in_(channels))
    return int((await session.execute(query)).scalar_one())


@dataclass(frozen=True)
class RunDelivery:
    """How far one run's messages have got: what the console's progress bar shows while
    a launch is planned and delivered."""

    status: str
    """The run's: ``pending`` until its time comes and it is planned, then ``planned``."""
    messages: int
    """The messages the run planned to send (queued and held; control rows are not sent)."""
    states: dict[str, int]
    """The run's outbox rows by state, control rows included."""

    @property
    def sent(self) -> int:
        return self.states.get("sent", 0)

    @property
    def settled(self) -> int:
        """Messages that will not be tried again: sent, failed or cancelled."""
        return sum(self.states.get(state, 0) for state in ("sent", "failed", "cancelled"))

    @property
    def finished(self) -> bool:
        return self.status == "planned" and self.settled >= self.messages


async def run_delivery_progress(session: AsyncSession, run_id: int) -> RunDelivery:
    """Run ``run_id``'s status and its outbox rows counted by state (one grouped read
    through the ``(run_id, customer_id)`` index)."""
    run = (
        await session.execute(
            select(CampaignRun.status, CampaignRun.queued, CampaignRun.held).where(
                CampaignRun.id == run_id
            )
        )
    ).one()
    outbox = _OUTBOX.c
    states = await session.execute(
        select(outbox.state, func.count()).where(outbox.run_id == run_id).group_by(outbox.state)
    )
    return RunDelivery(run.status, run.queued + run.held, {state: n for state, n in states.all()})
