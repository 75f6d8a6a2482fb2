"""Daily KPI snapshots: what a day's rows hold, that writing a day again replaces it,
that a past day comes out the same whatever happened since, the daily job's catch-up,
the trends reader and the migration, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import Connection, func, inspect, select

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store
from core.errors import CadenceError
from core.measure.kpis import Window
from core.measure.snapshots import (
    CATCH_UP_DAYS,
    PROGRAMME,
    kpi_trends,
    write_due_snapshots,
    write_kpi_snapshot,
)
from core.measure.stages import stage_kpis
from core.migrations import alembic_config, current_revision, head_revision, upgrade
from core.models import KpiSnapshot
from core.program import Program, load_program
from core.settings import Settings
from tests.conftest import NOW
from tests.measure_world import DAY, END, add_later_data, build_world, days, happen

Rows = dict[tuple[str, str], tuple[float | None, float | None]]


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program(DEFAULT_CONFIG_DIR / "program")


async def _rows(store: Store, day: object = DAY) -> Rows:
    async with store.reading() as session:
        found = await session.execute(
            select(KpiSnapshot.stage, KpiSnapshot.kpi, KpiSnapshot.value, KpiSnapshot.target).where(
                KpiSnapshot.day == day
            )
        )
        return {(stage, kpi): (value, target) for stage, kpi, value, target in found}


async def test_a_day_holds_every_stage_kpi_and_the_program_rows(
    store: Store, settings: Settings, program: Program, frozen_clock: clock.FixedClock
) -> None:
    await build_world(store)
    written = await write_kpi_snapshot(store, program, settings, DAY)
    assert written.at == END  # the day's end in the program's zone (UTC here)
    rows = await _rows(store)
    assert written.rows == len(rows) and written.stages == 5 and written.customers == 6
    async with store.reading() as session:
        live = await stage_kpis(session, program, Window(END, 30))
    for stage in live:
        for name, count in stage.counts().items():
            assert rows[(stage.name, name)] == (count, None)
        for name, kpi in stage.kpis().items():
            assert rows[(stage.name, name)] == (kpi.value, kpi.target)
    assert rows[("registered", "coverage")] == (0.5, 0.9)
    assert rows[(PROGRAMME, "messages")] == (3, None)
    assert rows[(PROGRAMME, "automated_share")] == (2 / 3, 0.85)
    assert rows[("inactive", "churn")] == (None, None)


async def test_writing_a_day_again_replaces_it(
    store: Store, settings: Settings, program: Program, frozen_clock: clock.FixedClock
) -> None:
    world = await build_world(store)
    await write_kpi_snapshot(store, program, settings, DAY)
    first = await _rows(store)
    await write_kpi_snapshot(store, program, settings, DAY)
    assert await _rows(store) == first
    # A late report of something that happened on the day changes the rewritten day.
    await happen(store, world.customers["b"], "purchase", END - timedelta(hours=2), 10.0)
    await write_kpi_snapshot(store, program, settings, DAY)
    again = await _rows(store)
    assert again[("registered", "converted")] == (2, None)
    assert set(again) == set(first)
    async with store.reading() as session:
        total = (await session.execute(select(func.count()).select_from(KpiSnapshot))).scalar()
    assert total == len(first)


async def test_a_past_day_comes_out_the_same_after_later_data(
    store: Store, settings: Settings, program: Program, frozen_clock: clock.FixedClock
) -> None:
    world = await build_world(store)
    earlier = DAY - days(20)
    await write_kpi_snapshot(store, program, settings, DAY)
    await write_kpi_snapshot(store, program, settings, earlier)
    day_rows, earlier_rows = await _rows(store), await _rows(store, earlier)
    assert earlier_rows[("inactive", "customers")] == (0, None)  # d went inactive later
    assert earlier_rows[("registered", "customers")] == (2, None)  # a and b; c came later

    await add_later_data(store, world)
    frozen_clock.advance(timedelta(days=7))
    await write_kpi_snapshot(store, program, settings, DAY)
    await write_kpi_snapshot(store, program, settings, earlier)
    assert await _rows(store) == day_rows
    assert await _rows(store, earlier) == earlier_rows


async def test_today_is_measured_up_to_now_and_tomorrow_is_refused(
    store: Store, settings: Settings, program: Program, frozen_clock: clock.FixedClock
) -> None:
    await build_world(store)
    today = await write_kpi_snapshot(store, program, settings, NOW.date())
    assert today.at == NOW
    with pytest.raises(CadenceError, match="has not begun"):
        await write_kpi_snapshot(store, program, settings, NOW.date() + timedelta(days=1))


async def test_the_daily_job_writes_yesterday_and_fills_missing_days(
    store: Store, settings: Settings, program: Program, frozen_clock: clock.FixedClock
) -> None:
    await build_world(store)
    counts = await write_due_snapshots(store, program, settings, NOW)
    assert counts["days"] == CATCH_UP_DAYS + 1 and counts["customers"] == 6
    assert counts["rows"] == (CATCH_UP_DAYS + 1) * len(await _rows(store))
    assert (await write_due_snapshots(store, program, settings, NOW))["days"] == 1


async def test_trends_read_the_last_days_per_stage_oldest_first(
    store: Store, settings: Settings, program: Program, frozen_clock: clock.FixedClock
) -> None:
    await build_world(store)
    for back in (0, 4, 8, 40):
        await write_kpi_snapshot(store, program, settings, DAY - timedelta(days=back))
    async with store.reading() as session:
        trends = await kpi_trends(session, until=DAY, days=10)
    assert set(trends) == {stage.name for stage in program.stages} | {PROGRAMME}
    registered = trends["registered"]
    assert [point.day for point in registered] == [DAY - days(8), DAY - days(4), DAY]
    assert registered[-1].values["coverage"] == 0.5
    assert registered[-1].targets == {"coverage": 0.9, "conversion": 0.15}
    assert registered[-1].window_days == 30
    assert trends[PROGRAMME][-1].targets == {"automated_share": 0.85}


async def test_the_migration_goes_down_and_up(store: Store) -> None:
    def tables(connection: Connection) -> list[str]:
        return list(inspect(connection).get_table_names())

    try:
        async with store.engine.begin() as connection:
            await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0007"))
        async with store.engine.connect() as connection:
            assert "kpi_snapshots" not in await connection.run_sync(tables)
        assert await current_revision(store) == "0007"
    finally:
        await upgrade(store)
    async with store.engine.connect() as connection:
        assert "kpi_snapshots" in await connection.run_sync(tables)
    assert await current_revision(store) == head_revision()
