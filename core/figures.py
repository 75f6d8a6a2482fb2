"""Figures the scheduler stores for the console: every campaign's uplift, and each day's
messages by channel and state.

Both take seconds at a million customers (an uplift reads its goal's events; a week of
messages is a million outbox rows), too long for a screen to wait on; the scheduler's jobs
compute them every so often (:func:`write_uplifts`, :func:`write_message_counts`) and the
console reads the stored rows with the moment they were computed, and says when that was.
Each is computed in a reading transaction and only written in a short one, which replaces
every row: on SQLite the write lock is held for a few hundred rows, not for the reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Store
from core.db.dialect import serialize_writers
from core.measure.campaign_report import campaign_uplifts
from core.measure.uplift import CampaignUplift
from core.models import Campaign, DailyMessageCount, OutboxMessage, StoredUplift
from core.outbox_view import OUTBOX_STATES
from core.program import Program
from core.scheduler.records import Counts
from core.settings import Settings

MESSAGE_DAYS = 7
"""How many days of messages are counted: the dashboard's week, today included."""


@dataclass(frozen=True)
class UpliftFigure:
    """A campaign's uplift as the console shows it: the verdict, the figure with its
    interval when the verdict gives one, and when it was measured."""

    verdict: str
    uplift: float | None
    low: float | None
    high: float | None
    next_close: datetime | None
    """When the earliest open run's goal window closes (None: no open run)."""
    computed_at: datetime

    @classmethod
    def of(cls, uplift: CampaignUplift, computed_at: datetime) -> UpliftFigure:
        estimate = uplift.estimate
        interval = estimate.absolute_interval
        return cls(
            verdict=str(estimate.verdict),
            uplift=estimate.absolute,
            low=None if interval is None else interval.low,
            high=None if interval is None else interval.high,
            next_close=uplift.next_close,
            computed_at=computed_at,
        )


@dataclass(frozen=True)
class DayCount:
    """Messages of one channel in one state due on one day (the program's time zone);
    the last day counted holds every message due from its start on, later days too."""

    day: date
    channel: str
    state: str
    messages: int


async def write_uplifts(
    store: Store, program: Program, settings: Settings, now: datetime
) -> Counts:
    """Measure every stored campaign's uplift as of ``now`` and store it in place of the
    last measured."""
    async with store.reading() as session:
        uplifts = await campaign_uplifts(
            session, now, settings.measure.min_sample_per_arm, program.params
        )
        ids = dict((await session.execute(select(Campaign.name, Campaign.id))).all())
    rows = []
    for uplift in uplifts:
        figure = UpliftFigure.of(uplift, now)
        rows.append(
            {
                "campaign_id": ids[uplift.name],
                "verdict": figure.verdict,
                "uplift": figure.uplift,
                "uplift_low": figure.low,
                "uplift_high": figure.high,
                "treated": uplift.estimate.treated.members,
                "control": uplift.estimate.control.members,
                "next_close": figure.next_close,
                "computed_at": now,
            }
        )
    async with store.transaction() as session:
        await serialize_writers(session, "campaign-uplifts")
        await session.execute(delete(StoredUplift))
        if rows:
            await session.execute(insert(StoredUplift), rows)
    return {"campaigns": len(rows)}


async def stored_uplifts(session: AsyncSession, name: str | None = None) -> dict[str, UpliftFigure]:
    """The uplifts last stored, by campaign name (of campaign ``name`` alone if given)."""
    query = select(Campaign.name, StoredUplift).join(
        StoredUplift, StoredUplift.campaign_id == Campaign.id
    )
    if name is not None:
        query = query.where(Campaign.name == name)
    return {
        name: UpliftFigure(
            row.verdict,
            row.uplift,
            row.uplift_low,
            row.uplift_high,
            row.next_close,
            row.computed_at,
        )
        for name, row in (await session.execute(query)).all()
    }


async def count_messages(
    session: AsyncSession, settings: Settings, now: datetime
) -> list[DayCount]:
    """Messages due on each of the last :data:`MESSAGE_DAYS` days (today's count holds
    everything due from today on), by channel and state, in one read."""
    zone = settings.zone
    today = now.astimezone(zone).date()
    days = [today - timedelta(days=back) for back in range(MESSAGE_DAYS - 1, -1, -1)]
    starts = [datetime.combine(day, time(), zone) for day in days]
    ends = [*starts[1:], None]
    per_day = [
        func.sum(
            case(
                (
                    OutboxMessage.due_at >= start
                    if end is None
                    else (OutboxMessage.due_at >= start) & (OutboxMessage.due_at < end),
                    1,
                ),
                else_=0,
            )
        )
        for start, end in zip(starts, ends, strict=True)
    ]
    rows = await session.execute(
        select(OutboxMessage.channel, OutboxMessage.state, *per_day)
        # Every state named, so the week is read through the (state, due_at) index: left to
        # itself SQLite walks the (channel, sent_at) index, every message ever planned
        # (bench store, 5 million messages, 1.2 million this week: 4.1 s -> 2.9 s).
        .where(OutboxMessage.state.in_(OUTBOX_STATES), OutboxMessage.due_at >= starts[0])
        .group_by(OutboxMessage.channel, OutboxMessage.state)
        .order_by(OutboxMessage.channel, OutboxMessage.state)
    )
    return [
        DayCount(day, channel, state, int(count or 0))
        for channel, state, *counts in rows.all()
        for day, count in zip(days, counts, strict=True)
        if count
    ]


async def write_message_counts(store: Store, settings: Settings, now: datetime) -> Counts:
    """Count the last :data:`MESSAGE_DAYS` days' messages and store them in place of the
    last counted."""
    async with store.reading() as session:
        counts = await count_messages(session, settings, now)
    rows = [
        {
            "day": count.day,
            "channel": count.channel,
            "state": count.state,
            "messages": count.messages,
            "computed_at": now,
        }
        for count in counts
    ]
    async with store.transaction() as session:
        await serialize_writers(session, "message-tallies")
        await session.execute(delete(DailyMessageCount))
        if rows:
            await session.execute(insert(DailyMessageCount), rows)
    return {"messages": sum(count.messages for count in counts)}


async def stored_message_counts(session: AsyncSession) -> tuple[list[DayCount], datetime] | None:
    """The message counts last stored and when they were counted; None if none are."""
    rows = (await session.execute(select(DailyMessageCount))).scalars().all()
    if not rows:
        return None
    counts = [DayCount(row.day, row.channel, row.state, row.messages) for row in rows]
    return counts, min(row.computed_at for row in rows)
