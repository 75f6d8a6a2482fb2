"""Every segment as the console's segments screen shows it: its size, how it moved over the
last days and the campaigns that target it.

The trend comes from ``segment_sizes`` (one row per segment and refresh, with how many
entered and left), not from ``segment_changes`` (one row per customer and move): the
same figures from a few hundred rows instead of millions. Sizes are each day's last
refresh, so a sparkline has one point a day however often segments refresh.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.dialect import backend_of, day_number
from core.models import Campaign, Segment, SegmentSize
from core.program import Program
from core.segments import SegmentSummary, segment_summaries

TREND_DAYS = 7
"""The days the trend spans."""


@dataclass(frozen=True)
class SegmentUse:
    """A stored campaign that targets a segment."""

    campaign: str
    kind: str
    status: str


@dataclass(frozen=True)
class SegmentTrend:
    """How a segment moved in the window: who entered and left, and its daily sizes."""

    entered: int = 0
    left: int = 0
    sizes: list[int] = field(default_factory=list)
    """The size after each day's last refresh, oldest first."""


@dataclass(frozen=True)
class SegmentRow:
    """One segment on the screen."""

    summary: SegmentSummary
    trend: SegmentTrend
    campaigns: list[SegmentUse]


async def segment_overview(
    session: AsyncSession, program: Program, now: datetime, *, days: int = TREND_DAYS
) -> list[SegmentRow]:
    """The program's segments in program order, with their trend over the ``days`` before
    ``now`` and the campaigns (not archived) that target them."""
    trends = await segment_trends(session, now - timedelta(days=days), now)
    uses = await segment_uses(session)
    return [
        SegmentRow(summary, trends.get(summary.name, SegmentTrend()), uses.get(summary.name, []))
        for summary in await segment_summaries(session, program)
    ]


async def segment_trends(
    session: AsyncSession, since: datetime, until: datetime
) -> dict[str, SegmentTrend]:
    """Per segment name: who entered and left in the refreshes after ``since`` up to
    ``until``, and the size after each day's last refresh."""
    day = day_number(backend_of(session), SegmentSize.at)
    days = (
        select(
            SegmentSize.segment_id,
            day.label("day"),
            func.max(SegmentSize.at).label("last_at"),
            func.sum(SegmentSize.entered).label("entered"),
            func.sum(SegmentSize.left).label("left"),
        )
        .where(SegmentSize.at > since, SegmentSize.at <= until)
        .group_by(SegmentSize.segment_id, day)
        .subquery()
    )
    rows = await session.execute(
        select(Segment.name, SegmentSize.size, days.c.entered, days.c.left)
        .select_from(days)
        .join(
            SegmentSize,
            and_(SegmentSize.segment_id == days.c.segment_id, SegmentSize.at == days.c.last_at),
        )
        .join(Segment, Segment.id == days.c.segment_id)
        .order_by(Segment.name, days.c.day)
    )
    moved: dict[str, tuple[int, int, list[int]]] = {}
    for name, size, entered, left in rows.all():
        before_entered, before_left, sizes = moved.get(name, (0, 0, []))
        sizes.append(int(size))
        moved[name] = (before_entered + int(entered), before_left + int(left), sizes)
    return {
        name: SegmentTrend(entered, left, sizes) for name, (entered, left, sizes) in moved.items()
    }


async def segment_uses(session: AsyncSession) -> dict[str, list[SegmentUse]]:
    """Per segment name, the stored campaigns (not archived) whose target is that segment,
    highest priority first."""
    rows = await session.execute(
        select(Campaign.name, Campaign.kind, Campaign.status, Campaign.definition)
        .where(Campaign.status != "archived")
        .order_by(Campaign.priority.desc(), Campaign.name)
    )
    uses: dict[str, list[SegmentUse]] = defaultdict(list)
    for name, kind, status, definition in rows.all():
        segment = (definition.get("target") or {}).get("segment")
        if segment:
            uses[segment].append(SegmentUse(name, kind, status))
    return dict(uses)
