"""The bulk paths of ``import events``: plain CSV read a run at a time, and rollups from
per-batch totals. Both must give exactly what the careful paths give."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from core import clock
from core.db import Store
from core.ingest import import_file
from core.models import PendingRollup
from core.settings import ImportSettings, Settings
from tests.conftest import NOW
from tests.helpers import rejects_of, seed_customers, write
from tests.test_import_events import expected_rollups, rollups, stored_events

CUSTOMERS = [f"c{n}" for n in range(30)]
KINDS = ("purchase", "login", "page_view", "message_opened", "message_clicked", "message_sent")


def _events(count: int, offset: int) -> list[str]:
    """Plain CSV lines, out of time order, some after NOW, some without an offset or a value."""
    lines = []
    for n in range(offset, offset + count):
        kind = KINDS[n % len(KINDS)]
        moment = NOW - timedelta(days=20) + timedelta(minutes=(n * 7919) % 40_000)
        written = moment.strftime("%Y-%m-%dT%H:%M:%S") if n % 5 == 0 else moment.isoformat()
        value = f"{(n % 97) + 0.25}" if kind == "purchase" and n % 4 else ""
        lines.append(f"{CUSTOMERS[(n * 13) % 30]},{kind},{written},{value},p{n % 7}\n")
    return lines


async def _rollups_match_the_stored_events(store: Store) -> None:
    counted = [
        (e.customer, e.type, e.occurred_at, e.value)
        for e in await stored_events(store)
        if e.occurred_at <= NOW
    ]
    assert await rollups(store) == expected_rollups(counted)


async def test_rollups_from_batch_totals_equal_a_recount_with_duplicates_and_future_events(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await seed_customers(store, settings, tmp_path, *CUSTOMERS)
    header = "customer_id,type,occurred_at,value,product\n"
    first = _events(3_000, 0)
    # Repeats inside the file send those batches to the SQL rollup; the others use totals.
    first[2_100:2_100] = first[2_000:2_010]
    first_path = write(tmp_path / "first.csv", header + "".join(first))
    second_path = write(tmp_path / "second.csv", header + "".join(_events(2_000, 2_500)))
    small = settings.model_copy(update={"imports": ImportSettings(batch_size=400)})

    report = await import_file(store, small, "events", first_path)
    assert (report.inserted, report.unchanged) == (3_000, 10)
    assert report.held > 0
    await _rollups_match_the_stored_events(store)

    overlapping = await import_file(store, small, "events", second_path)
    assert (overlapping.inserted, overlapping.unchanged) == (1_500, 500)
    again = await import_file(store, small, "events", first_path)
    assert (again.inserted, again.held) == (0, 0)
    await _rollups_match_the_stored_events(store)
    future = [e for e in await stored_events(store) if e.occurred_at > NOW]
    async with store.reading() as session:
        held = (await session.execute(select(func.count()).select_from(PendingRollup))).scalar()
    assert held == len(future) == report.held + overlapping.held


async def test_plain_csv_runs_reject_rows_by_line_with_their_text(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await seed_customers(store, settings, tmp_path, "c1", "c2")
    at = datetime(2026, 11, 1, 10, tzinfo=NOW.tzinfo).isoformat()
    lines = [
        "customer_id,type,occurred_at,value,page",  # 1
        f"c1,login,{at},,/a",  # 2
        "",  # 3: blank, skipped
        f"c1,login,{at},,/b,extra",  # 4
        f"c2,purchase,{at},12.5,/c",  # 5
        f"nobody,login,{at},,/d",  # 6
        "c2,login,yesterday,,/e",  # 7
        f"c2,Bad Type,{at},,/f",  # 8
    ]
    path = write(tmp_path / "events.csv", "\r\n".join(lines) + "\r\n")
    rejects = tmp_path / "rejects.jsonl"

    report = await import_file(store, settings, "events", path, rejects_path=rejects)

    found = sorted((entry["line"], entry["record"]) for entry in rejects_of(rejects))
    assert found == [(4, lines[3]), (6, lines[5]), (7, lines[6]), (8, lines[7])]
    assert (report.read, report.inserted, report.rejected) == (6, 2, 4)
    stored = [(e.customer, e.type, e.value, e.properties) for e in await stored_events(store)]
    assert stored == [
        ("c1", "login", None, {"page": "/a"}),
        ("c2", "purchase", 12.5, {"page": "/c"}),
    ]
