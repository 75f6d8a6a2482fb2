"""The segments screen on SQLite and PostgreSQL: every segment with its size, the week's
movement and daily sizes, and the campaigns that target it; in 80x24."""

from __future__ import annotations

from datetime import timedelta

import pytest
from textual.widgets import DataTable, Static

from console.screens.segments import SegmentsScreen
from core.db import Store
from core.segment_overview import segment_overview
from core.settings import Settings
from tests.conftest import NOW
from tests.console.world import column, console_app, living_store, show

pytestmark = pytest.mark.usefixtures("frozen_clock")


async def test_every_segment_with_its_size_trend_and_campaigns(
    store: Store, settings: Settings
) -> None:
    program = await living_store(
        store, settings, refreshed_before=(timedelta(days=4), timedelta(days=2))
    )
    async with store.reading() as session:
        expected = {row.summary.name: row for row in await segment_overview(session, program, NOW)}
    app = console_app(store, settings, program)
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot, "g")
        screen = app.screen
        assert isinstance(screen, SegmentsScreen)
        table = screen.query_one("#segments", DataTable)
        assert column(table, 0) == [segment.name for segment in program.segments]
        for name, size, came, went, trend, used in zip(
            *(column(table, index) for index in range(6)), strict=True
        ):
            row = expected[name]
            assert int(size.replace(",", "")) == row.summary.size
            assert (came, went) == (f"+{row.trend.entered:,}", f"-{row.trend.left:,}")
            assert len(trend) == 3, "one point a day: four and two days ago, and today"
            assert used == (", ".join(use.campaign for use in row.campaigns) or "-")
        assert any(size != "0" for size in column(table, 1))

        table.focus()
        await pilot.press(*["down"] * column(table, 0).index("value-high"))
        await pilot.pause()
        assert str(screen.query_one("#segment-title", Static).render()) == "value-high"
        detail = str(screen.query_one("#segment-detail", Static).render())
        assert program.segment("value-high").spec.rule in detail
        assert "used by active-hv-monthly-offer (cycle, active)" in detail
        assert f"{expected['value-high'].summary.size:,} customers" in detail
