"""Stage and program KPIs against a history small enough to work out by hand (see
tests/measure_world.py), on both databases."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, inspect

from config import DEFAULT_CONFIG_DIR
from core.db import Store
from core.db.bulk import store_events
from core.measure.kpis import KpiValue, Window
from core.measure.programme import programme_kpis
from core.measure.stages import StageKpis, stage_kpis
from core.message_events import message_event
from core.migrations import alembic_config, current_revision, head_revision, upgrade
from core.program import Program, ProgramError, load_program
from core.program.model import ProgramKpiSpec
from tests.measure_world import END, add_later_data, build_world, days

WINDOW = Window(END, 30)


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program(DEFAULT_CONFIG_DIR / "program")


async def _by_stage(store: Store, program: Program, window: Window) -> dict[str, StageKpis]:
    async with store.reading() as session:
        return {kpis.name: kpis for kpis in await stage_kpis(session, program, window)}


async def test_each_stage_kpi_counts_what_its_definition_says(
    store: Store, program: Program
) -> None:
    await build_world(store)
    stages = await _by_stage(store, program, WINDOW)
    assert list(stages) == ["registered", "new", "active", "inactive", "reactivated"]

    registered = stages["registered"]
    # b and c are registered at the end; a and b were at the start; c was placed inside.
    assert (registered.customers, registered.cohort) == (2, 2)
    assert (registered.entered, registered.placed, registered.left) == (0, 1, 1)
    assert registered.messaged == 1  # c; b's message is older than the window
    assert registered.coverage == KpiValue(0.5, 0.9)
    assert registered.converted == 1 and registered.conversion == KpiValue(0.5, 0.15)
    assert registered.revenue == 40.0 and registered.revenue_per_customer.value == 20.0
    assert registered.churn == KpiValue(0.0, None, higher_is_better=False)

    new = stages["new"]
    assert (new.customers, new.cohort, new.entered, new.placed) == (1, 0, 1, 0)
    assert new.coverage.value == 1.0  # a was sent a message while still registered
    assert new.conversion.value is None and new.revenue_per_customer.value is None

    active = stages["active"]
    assert (active.customers, active.cohort, active.left) == (2, 3, 1)
    assert active.messaged == 1  # e; f's control row and failed message are not messages
    assert active.converted == 1 and active.conversion.value == pytest.approx(1 / 3)
    assert active.revenue == 150.0
    assert active.revenue_per_customer == KpiValue(50.0, 60.0)
    assert active.churned == 1 and active.churn.value == pytest.approx(1 / 3)

    inactive = stages["inactive"]
    assert (inactive.customers, inactive.entered, inactive.messaged) == (1, 1, 0)
    assert inactive.coverage == KpiValue(0.0, 0.7)
    assert inactive.churn.value is None  # the dormant stage churns into nothing

    reactivated = stages["reactivated"]
    assert reactivated.customers == 0 and reactivated.coverage.value is None


async def test_the_gap_to_target_says_how_far_and_which_way(store: Store, program: Program) -> None:
    await build_world(store)
    stages = await _by_stage(store, program, WINDOW)
    registered, active = stages["registered"], stages["active"]
    assert registered.coverage.gap == pytest.approx(-0.4) and registered.coverage.met is False
    assert registered.conversion.gap == pytest.approx(0.35) and registered.conversion.met
    assert active.revenue_per_customer.gap == pytest.approx(-10.0)
    assert stages["new"].conversion.gap is None and stages["new"].conversion.met is None
    # Churn is better low: a ceiling above the value is met.
    assert KpiValue(0.1, 0.2, higher_is_better=False).met is True
    assert KpiValue(0.3, 0.2, higher_is_better=False).met is False


async def test_targets_apply_only_to_the_window_they_name(store: Store, program: Program) -> None:
    await build_world(store)
    stages = await _by_stage(store, program, Window(END, 14))
    assert stages["registered"].coverage.target is None
    assert stages["registered"].coverage.value == 0.5  # c; a left, b was sent 40 days ago
    # With a 14-day window, a's purchase and move to new (8 and 9 days ago) still count.
    assert stages["registered"].converted == 1


async def test_program_kpis_count_messages_by_kind_and_rates_per_message(
    store: Store, program: Program
) -> None:
    await build_world(store)
    async with store.reading() as session:
        kpis = await programme_kpis(session, program, WINDOW)
    assert kpis.customers == 6
    assert kpis.messages == 3 and kpis.by_kind == {"cycle": 2, "ad_hoc": 1}
    assert (kpis.automated, kpis.ad_hoc) == (2, 1)
    assert kpis.automated_share.value == pytest.approx(2 / 3)
    assert kpis.automated_share.target == 0.85
    assert kpis.automated_share.met is False
    assert kpis.messages_per_customer_week.value == pytest.approx(3 / 6 / (30 / 7))
    assert kpis.opt_outs == 1 and kpis.opt_out_rate.value == pytest.approx(1 / 3)
    # c's bounce report plus the address delivery suppressed; d's older report and the
    # unsubscribe's suppression are not bounces.
    assert kpis.bounces == 2 and kpis.bounce_rate.value == pytest.approx(2 / 3)
    assert kpis.complaints == 0 and kpis.complaint_rate.value == 0.0


async def test_program_targets_come_from_the_program(store: Store, program: Program) -> None:
    await build_world(store)
    stricter = replace(program, kpi=ProgramKpiSpec(automated_share=0.5, bounce_rate=0.1))
    async with store.reading() as session:
        kpis = await programme_kpis(session, stricter, WINDOW)
    assert kpis.automated_share.target == 0.5 and kpis.automated_share.met is True
    assert kpis.bounce_rate.target == 0.1 and kpis.bounce_rate.met is False
    assert kpis.opt_out_rate.target is None


async def test_later_data_does_not_change_a_past_moment(store: Store, program: Program) -> None:
    world = await build_world(store)
    before = await _by_stage(store, program, WINDOW)
    async with store.reading() as session:
        programme_before = await programme_kpis(session, program, WINDOW)
    await add_later_data(store, world)
    assert await _by_stage(store, program, WINDOW) == before
    async with store.reading() as session:
        assert await programme_kpis(session, program, WINDOW) == programme_before
        # ...while now the moves after END show.
        later = {k.name: k for k in await stage_kpis(session, program, Window(END + days(3), 30))}
    assert later["active"].customers == 2  # b came, f went
    assert later["registered"].customers == 2  # b went, g came


async def test_a_window_reads_the_same_through_the_index_or_a_scan(
    store: Store, program: Program
) -> None:
    """Events outside the window, however many, leave the window's numbers as they were."""
    world = await build_world(store)
    scanned = await _by_stage(store, program, WINDOW)
    old = [
        message_event(world.customers["b"], "page_view", END - days(400), {"n": n}, source="test")
        for n in range(300)
    ]
    async with store.transaction() as session:
        await store_events(session, old, END)
    assert await _by_stage(store, program, WINDOW) == scanned


async def test_the_stage_history_answers_for_any_moment(store: Store, program: Program) -> None:
    """Twenty days before END a and b were registered, d, e and f active, c not placed
    yet; at END a is new, b and c registered, d inactive, e and f active."""
    await build_world(store)
    stages = await _by_stage(store, program, Window(END, 20))
    at_start = {name: kpis.cohort for name, kpis in stages.items() if kpis.cohort}
    at_end = {name: kpis.customers for name, kpis in stages.items() if kpis.customers}
    assert at_start == {"registered": 2, "active": 3}
    assert at_end == {"registered": 2, "new": 1, "active": 2, "inactive": 1}
    # Ten days before END: a is not new yet and c not placed yet, but d is inactive.
    stages = await _by_stage(store, program, Window(END - days(10), 10))
    assert {name: kpis.cohort for name, kpis in stages.items() if kpis.cohort} == at_start
    assert {name: kpis.customers for name, kpis in stages.items() if kpis.customers} == {
        "registered": 2,
        "active": 2,
        "inactive": 1,
    }


def test_stage_kpi_targets_are_checked_when_the_program_loads(tmp_path: Path) -> None:
    folder = tmp_path / "program"
    folder.mkdir()
    for source in (DEFAULT_CONFIG_DIR / "program").iterdir():
        (folder / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    stages = folder / "stages.toml"
    text = stages.read_text(encoding="utf-8")
    text = text.replace("coverage_30d = 0.8,", "coverge_30d = 0.8,", 1)
    text = text.replace("conversion_30d = 0.05", "conversion_30d = 5", 1)
    text = text.replace("automated_share = 0.85", "automated_share = 1.5")
    stages.write_text(text, encoding="utf-8")
    with pytest.raises(ProgramError) as raised:
        load_program(folder)
    message = str(raised.value)
    assert "unknown KPI `coverge_30d`" in message
    assert "`conversion_30d` is a share: a number from 0 to 1, not 5" in message
    assert "field `program`, field `kpi`, field `automated_share`" in message


async def test_the_stage_history_migration_goes_down_and_up(store: Store) -> None:
    def indexes(connection: Connection) -> set[tuple[str, ...]]:
        found = inspect(connection).get_indexes("stage_transitions")
        return {tuple(str(column) for column in index["column_names"]) for index in found}

    covering = {
        ("customer_id", "at", "from_stage", "to_stage"),
        ("at", "from_stage", "to_stage", "customer_id"),
    }
    try:
        async with store.engine.begin() as connection:
            await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0012"))
        async with store.engine.connect() as connection:
            assert await connection.run_sync(indexes) == {("customer_id",), ("at",)}
        assert await current_revision(store) == "0012"
    finally:
        await upgrade(store)
    async with store.engine.connect() as connection:
        assert await connection.run_sync(indexes) == covering
    assert await current_revision(store) == head_revision()
