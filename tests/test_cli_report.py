"""``cadence report campaigns`` and ``cadence report campaign NAME`` as a user runs them, on
both backends, over the starter program with one campaign's runs written to the store."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Store, create_engine
from core.models import Campaign
from core.program import load_program
from core.program.apply import apply_program
from tests.planner_world import Person, add_people
from tests.test_cli import NOW, assert_one_line_error
from tests.test_cli_campaigns import StoreCli
from tests.uplift_world import Happening, add_events, add_run

OFFER = "active-hv-monthly-offer"
AT = datetime.fromisoformat(NOW)
DAY = timedelta(days=1)


async def _seed(url: str, config: Path) -> None:
    """The program in ``config`` applied as `cadence program apply` applies it (here, not in
    a process of its own: what the tests run is the reports), then two runs of the offer:
    one closed (4 of 8 treated and 1 of 4 control bought), one still open; the closed
    one's key is a formula, to be escaped in CSV."""
    store = Store(create_engine(url))
    try:
        program = load_program(config / "program", config / "templates")
        assert (await apply_program(store, program, AT)).applied
        ids = await add_people(store, [Person(f"p{n}") for n in range(12)], AT - 400 * DAY)
        people = sorted(ids.values())
        async with store.reading() as session:
            offer = await session.scalar(select(Campaign.id).where(Campaign.name == OFFER))
        assert offer is not None
        start = AT - 20 * DAY
        arms = {p: "sent" if n < 8 else "control" for n, p in enumerate(people)}
        await add_run(store, offer, start, arms, key='=HYPERLINK("http://x")')
        await add_run(store, offer, AT - DAY, {people[0]: "sent", people[8]: "control"})
        buyers = [*people[:4], people[8]]
        await add_events(store, [Happening(p, "purchase", start + DAY, 10.0) for p in buyers], AT)
    finally:
        await store.close()


@pytest.fixture
def cadence(tmp_path: Path, database_url: str) -> StoreCli:
    cli = StoreCli(tmp_path, tmp_path / "unused.db", url=database_url)
    cli.ok("init", "mine")
    asyncio.run(_seed(database_url, cli.config))
    return cli


def _with_sample(cadence: StoreCli, minimum: int, *args: str) -> str:
    result = cadence(
        "--config",
        str(cadence.config),
        *args,
        "--now",
        NOW,
        # Wide enough that no table cell wraps, so the tests read whole cells.
        env={"CADENCE_MEASURE__MIN_SAMPLE_PER_ARM": str(minimum), "COLUMNS": "250"},
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result.stdout


def test_report_campaigns_lists_every_campaign_with_its_verdict(cadence: StoreCli) -> None:
    table = _with_sample(cadence, 100, "report", "campaigns")
    assert "Campaign uplift as of 2026-11-23 12:00" in table
    rows = {line.split()[0]: line for line in table.splitlines() if line.strip()}
    assert "not enough data" in rows[OFFER]  # 8 and 4 members, below the default 100
    assert "no goal, uplift unknown" in rows["purchase-receipt"]
    assert "no runs yet" in rows["new-second-purchase"]

    document = json.loads(_with_sample(cadence, 1, "report", "campaigns", "--format", "json"))
    assert document["report"] == "campaigns" and document["min_sample_per_arm"] == 1
    offer = next(row for row in document["rows"] if row["campaign"] == OFFER)
    assert (offer["runs"], offer["open_runs"], offer["sent"], offer["control"]) == (2, 1, 9, 5)
    assert (offer["treated"], offer["treated_converted"]) == (8, 4)
    assert (offer["control_members"], offer["control_converted"]) == (4, 1)
    assert offer["uplift"] == pytest.approx(0.25)
    assert offer["uplift_low"] < 0.25 < offer["uplift_high"]
    assert offer["verdict"] == "not significant"
    assert offer["incremental_conversions"] == pytest.approx(2.0)
    assert offer["incremental_revenue"] is None  # the goal counts purchases, not revenue


def test_report_campaign_shows_each_run_and_the_totals(cadence: StoreCli) -> None:
    table = _with_sample(cadence, 1, "report", "campaign", OFFER)
    assert "window open until 2026-11-29 12:00" in table
    assert "total of 1 closed run" in table and "+25.00" in table

    text = _with_sample(cadence, 1, "report", "campaign", OFFER, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [row["run"] for row in rows] == [
        '\'=HYPERLINK("http://x")',  # a formula no spreadsheet will run
        rows[1]["run"],
        "total of 1 closed run",
    ]
    assert rows[0]["final"] == "true" and rows[1]["final"] == "false"
    assert rows[1]["verdict"] == "window open until 2026-11-29 12:00"
    assert (rows[1]["treated"], rows[1]["treated_converted"]) == ("1", "0")
    assert float(rows[2]["uplift"]) == pytest.approx(0.25)
    assert "uplift_interval" not in rows[0]  # the table's view; CSV has the bounds
    assert float(rows[2]["uplift_low"]) < 0.25

    document = json.loads(_with_sample(cadence, 1, "report", "campaign", OFFER, "--format", "json"))
    assert document["campaign"] == OFFER and document["goal"] == "purchase within 7d"
    assert len(document["rows"]) == 2 and document["totals"]["treated"] == 8


def test_an_unknown_campaign_names_the_close_matches(cadence: StoreCli) -> None:
    result = cadence.run("report", "campaign", "active-hv-monthly-ofer")
    assert_one_line_error(
        result,
        "no campaign named `active-hv-monthly-ofer`",
        "did you mean `active-hv-monthly-offer`",
    )
