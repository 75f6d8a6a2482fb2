"""``cadence report stages``, ``program``, ``snapshot`` and ``trends`` as a user runs them,
on both backends, over the starter program and the hand-built history of
tests/measure_world.py."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest

from core.db import Store, create_engine
from tests.measure_world import DAY, build_world
from tests.test_cli import assert_one_line_error
from tests.test_cli_campaigns import StoreCli


async def _seed(url: str) -> None:
    store = Store(create_engine(url))
    try:
        await build_world(store)
    finally:
        await store.close()


@pytest.fixture
def cadence(tmp_path: Path, database_url: str) -> StoreCli:
    cli = StoreCli(tmp_path, tmp_path / "unused.db", url=database_url)
    cli.ok("init", "mine")
    asyncio.run(_seed(database_url))
    return cli


def test_report_stages_shows_each_kpi_against_its_target(cadence: StoreCli) -> None:
    table = cadence.out("report", "stages")
    assert "Stage KPIs over 30 days to 2026-11-23 12:00 UTC" in table
    rows = {line.split()[0]: line for line in table.splitlines() if line.strip()}
    assert "50.0% < 90.0%" in rows["registered"]  # coverage, below its target
    assert "50.0% >= 15.0%" in rows["registered"]  # conversion, above it
    assert "registered: convert: a first purchase within 30 days of signing up" in table

    document = json.loads(cadence.out("report", "stages", "--format", "json"))
    assert document["report"] == "stages" and document["window_days"] == 30
    active = next(row for row in document["rows"] if row["stage"] == "active")
    assert (active["customers"], active["cohort"], active["churned"]) == (2, 3, 1)
    assert active["revenue_per_customer"] == 50.0
    assert active["revenue_per_customer_target"] == 60.0
    assert active["revenue_per_customer_gap"] == -10.0
    assert "coverage_vs_target" not in active  # the table's view; JSON has the numbers

    week = json.loads(cadence.out("report", "stages", "--window-days", "7", "--format", "json"))
    assert week["window_days"] == 7
    assert all(row["coverage_target"] is None for row in week["rows"])  # targets say 30d


def test_report_program_shows_the_automated_share_and_the_rates(cadence: StoreCli) -> None:
    table = cadence.out("report", "program")
    assert "automated share of messages" in table and "66.7% < 85.0%" in table

    text = cadence.out("report", "program", "--format", "csv")
    rows = {row["kpi"]: row for row in csv.DictReader(io.StringIO(text, newline=""))}
    assert float(rows["automated_share"]["value"]) == pytest.approx(2 / 3)
    assert float(rows["automated_share"]["target"]) == 0.85
    assert float(rows["bounce_rate"]["value"]) == pytest.approx(2 / 3)
    assert rows["bounce_rate"]["target"] == ""
    assert rows["messages"]["value"] == "3" and rows["ad_hoc"]["value"] == "1"


def test_a_snapshot_written_by_hand_shows_in_the_trends(cadence: StoreCli) -> None:
    written = cadence.out("report", "snapshot", "--day", str(DAY))
    assert f"KPI snapshot of {DAY} written" in written
    assert "5 stages and the program (6 customers), as of 2026-11-23 00:00 UTC" in written

    trends = json.loads(
        cadence.out("report", "trends", "--until", str(DAY), "--days", "3", "--format", "json")
    )
    assert trends["kpi"] == "coverage"
    assert [row["day"] for row in trends["rows"]] == [str(DAY)]
    assert trends["rows"][0]["registered"] == 0.5

    shares = cadence.out("report", "trends", "--kpi", "automated_share", "--until", str(DAY))
    assert "program" in shares and "66.7%" in shares

    result = cadence.run("report", "trends", "--kpi", "coverge", "--until", str(DAY))
    assert_one_line_error(result, "the snapshots hold no KPI `coverge`", "did you mean `coverage`")

    for day, message in (("22/11/2026", "cannot read '22/11/2026'"), ("2026-11-24", "not begun")):
        assert_one_line_error(cadence.run("report", "snapshot", "--day", day), message)
