"""Large files are parsed in a second process; the result must equal the in-process path."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import clock
from core.bench import write_bench_files
from core.db import Store
from core.errors import CadenceError
from core.ingest import import_file
from core.models import CustomerRollup, Event
from core.settings import Settings


@pytest.mark.usefixtures("frozen_clock")
async def test_worker_parse_imports_every_row_once(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    customers_csv, events_csv = write_bench_files(tmp_path, events=12_000, customers=300)
    with events_csv.open("a", encoding="utf-8") as handle:
        handle.write("B9999999,login,2026-01-01T00:00:00Z,,p1\n")  # unknown customer
        handle.write("B0000001,login,yesterday,,p1\n")  # bad date
    parallel = settings.model_copy(
        update={
            "imports": settings.imports.model_copy(
                update={"parallel_parse_min_bytes": 0, "batch_size": 2_500}
            )
        }
    )
    await import_file(store, parallel, "customers", str(customers_csv))

    first = await import_file(store, parallel, "events", str(events_csv))
    again = await import_file(store, parallel, "events", str(events_csv))

    assert (first.read, first.inserted, first.rejected) == (12_002, 12_000, 2)
    assert (again.inserted, again.unchanged, again.rejected) == (0, 12_000, 2)
    async with store.reading() as session:
        stored = (await session.execute(select(func.count()).select_from(Event))).scalar_one()
        counted = (await session.execute(select(func.sum(CustomerRollup.event_count)))).scalar_one()
    assert stored == counted == 12_000
    rejects = _read(Path(f"{events_csv}.rejects.jsonl"))
    assert "unknown customer `B9999999`" in rejects
    assert "`occurred_at` 'yesterday' is not a date or time" in rejects


async def test_worker_reports_a_bad_header(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    events_csv = tmp_path / "events.csv"
    events_csv.write_text("who,what,when\nc1,login,2026-01-01\n", encoding="utf-8")
    parallel = settings.model_copy(
        update={"imports": settings.imports.model_copy(update={"parallel_parse_min_bytes": 0})}
    )
    with (
        clock.using(clock.FixedClock(clock.parse_moment("2026-11-23"))),
        pytest.raises(CadenceError, match="missing required column 'customer_id'"),
    ):
        await import_file(store, parallel, "events", str(events_csv))


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")
