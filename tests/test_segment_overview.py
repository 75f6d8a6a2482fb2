"""The segments overview on both databases: sizes, the week's trend from the refreshes'
records, and the stored campaigns that target each segment."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.db import Store
from core.models import Campaign, Segment, SegmentSize
from core.segment_overview import segment_overview
from core.settings import Settings
from tests.conftest import NOW
from tests.console.world import living_store

pytestmark = pytest.mark.usefixtures("frozen_clock")

REFRESHES = (
    timedelta(days=10),  # before the week: not in the trend
    timedelta(days=3),
    timedelta(days=2, hours=5),
    timedelta(days=2),  # the same day: its size is that day's point
)


async def test_sizes_the_weeks_trend_and_the_campaigns_using_each_segment(
    store: Store, settings: Settings
) -> None:
    program = await living_store(store, settings, refreshed_before=REFRESHES)
    async with store.transaction() as session:
        await session.execute(
            update(Campaign).where(Campaign.name == "inactive-winback").values(status="archived")
        )
    async with store.reading() as session:
        rows = await segment_overview(session, program, NOW)
        stored = (
            await session.execute(
                select(
                    Segment.name,
                    SegmentSize.at,
                    SegmentSize.size,
                    SegmentSize.entered,
                    SegmentSize.left,
                )
                .join(Segment, Segment.id == SegmentSize.segment_id)
                .order_by(SegmentSize.at)
            )
        ).all()
    assert [row.summary.name for row in rows] == [segment.name for segment in program.segments]
    week = NOW - timedelta(days=7)
    daily: dict[str, dict[object, int]] = defaultdict(dict)
    moved: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, at, size, came, went in stored:
        if at > week:
            daily[name][at.date()] = size  # ordered by time: the day's last refresh wins
            moved[name][0] += came
            moved[name][1] += went
    for row in rows:
        name = row.summary.name
        assert row.trend.sizes == list(daily[name].values()), name
        assert len(row.trend.sizes) == 3
        assert row.trend.sizes[-1] == row.summary.size
        assert [row.trend.entered, row.trend.left] == moved[name], name
    assert sum(row.trend.entered for row in rows) > 0
    uses = {row.summary.name: [use.campaign for use in row.campaigns] for row in rows}
    assert uses["value-high"] == ["active-hv-monthly-offer"]
    assert uses["cross-sell-sports-to-casino"] == ["sports-to-casino-cross-sell"]
    assert uses["inactive-valuable"] == [], "an archived campaign uses nothing"
    [use] = next(row.campaigns for row in rows if row.summary.name == "value-high")
    assert (use.kind, use.status) == ("cycle", "active")
