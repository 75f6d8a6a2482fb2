"""``cadence bench import``: event import throughput against a floor measured in the same run.

The floor is the fastest plain way to put the very same rows into an
equivalent table: ``sqlite3.executemany`` on SQLite, asyncpg's COPY on
PostgreSQL. The ratio says how much of that speed Cadence keeps while it
also reads and validates the file, resolves customers, skips duplicates
and maintains the rollups.
"""

from __future__ import annotations

import csv
import json
import random
import sqlite3
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from core import clock
from core.db import Store, create_engine
from core.db.bulk import EVENT_COLUMNS
from core.db.types import epoch_micros
from core.ingest import import_file
from core.migrations import upgrade
from core.models import Base, Event
from core.settings import Settings

TARGET_ROWS_PER_S = 150_000
TARGET_RATIO = 0.4
_TYPES = ("page_view", "product_view", "login", "cart_add", "purchase")


def write_bench_files(
    folder: Path, *, events: int, customers: int, seed: int = 1
) -> tuple[Path, Path]:
    """A customers CSV and a time-ordered events CSV, as an export would produce them."""
    rng = random.Random(seed)
    customers_csv, events_csv = folder / "customers.csv", folder / "events.csv"
    with customers_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "email", "registered_at"])
        for n in range(customers):
            writer.writerow([f"B{n:07d}", f"bench{n}@example.com", "2025-01-01T00:00:00Z"])
    end = clock.now().replace(microsecond=0)
    step = timedelta(days=365) / events
    moment = end - timedelta(days=365)
    with events_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "type", "occurred_at", "value", "product_id"])
        for _ in range(events):
            moment += step
            kind = rng.choice(_TYPES)
            value = f"{rng.uniform(5, 200):.2f}" if kind == "purchase" else ""
            writer.writerow(
                [
                    f"B{rng.randrange(customers):07d}",
                    kind,
                    moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    value,
                    f"p{rng.randrange(500)}",
                ]
            )
    return customers_csv, events_csv


async def benchmark_import(
    settings: Settings, *, events: int, customers: int, database_url: str | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cadence-bench-") as folder:
        work = Path(folder)
        customers_csv, events_csv = write_bench_files(work, events=events, customers=customers)
        url = database_url or f"sqlite+aiosqlite:///{work / 'bench.db'}"
        store = Store(create_engine(url, settings.sqlite), settings.sqlite)
        try:
            await upgrade(store)
            await import_file(store, settings, "customers", str(customers_csv))
            report = await import_file(store, settings, "events", str(events_csv))
            async with store.reading() as session:
                stored = (
                    await session.execute(
                        select(*(Event.__table__.c[name] for name in EVENT_COLUMNS)).order_by(
                            Event.id
                        )
                    )
                ).all()
            if store.backend == "postgresql":
                floor_seconds, floor_name = await _postgresql_floor(store, list(stored)), "copy"
            else:
                floor_seconds = _sqlite_floor(work / "floor.db", stored, settings)
                floor_name = "sqlite3.executemany"
        finally:
            await store.close()
    rows_per_s = report.read / report.seconds
    floor_rows_per_s = len(stored) / floor_seconds
    ratio = rows_per_s / floor_rows_per_s
    return {
        "bench": "import",
        "backend": store.backend,
        "rows": report.read,
        "inserted": report.inserted,
        "seconds": round(report.seconds, 3),
        "rows_per_s": round(rows_per_s),
        "floor": floor_name,
        "floor_rows_per_s": round(floor_rows_per_s),
        "ratio": round(ratio, 3),
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "target_ratio": TARGET_RATIO,
        "meets_target": rows_per_s >= TARGET_ROWS_PER_S and ratio >= TARGET_RATIO,
    }


def _sqlite_floor(path: Path, rows: Any, settings: Settings) -> float:
    """Seconds for plain ``sqlite3.executemany`` of ``rows`` into a copy of the events table."""
    dialect = sqlite.dialect()
    table = Base.metadata.tables["events"]
    connection = sqlite3.connect(path)
    try:
        connection.execute(str(CreateTable(table).compile(dialect=dialect)))
        for index in table.indexes:
            connection.execute(str(CreateIndex(index).compile(dialect=dialect)))
        connection.commit()
        values = [
            (c, t, epoch_micros(at.replace(tzinfo=None)), v, _json(p), s, k, d)
            for c, t, at, v, p, s, k, d in rows
        ]
        insert = (
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "  # noqa: S608 - constant
            f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
        )
        batch = settings.imports.batch_size
        started = time.perf_counter()
        for start in range(0, len(values), batch):
            connection.executemany(insert, values[start : start + batch])
            connection.commit()
        return time.perf_counter() - started
    finally:
        connection.close()


async def _postgresql_floor(store: Store, rows: list[Any]) -> float:
    """Seconds for asyncpg COPY of ``rows`` into a copy of the events table."""
    async with store.engine.connect() as connection:
        await connection.exec_driver_sql("DROP TABLE IF EXISTS bench_events_floor")
        await connection.exec_driver_sql(
            "CREATE TABLE bench_events_floor (LIKE events INCLUDING ALL)"
        )
        await connection.commit()
        raw: Any = (await connection.get_raw_connection()).driver_connection
        values = [
            (c, t, at.replace(tzinfo=None), v, _json(p), s, k, d)
            for c, t, at, v, p, s, k, d in rows
        ]
        started = time.perf_counter()
        await raw.copy_records_to_table("bench_events_floor", records=values, columns=EVENT_COLUMNS)
        seconds = time.perf_counter() - started
        await connection.exec_driver_sql("DROP TABLE bench_events_floor")
        await connection.commit()
        return seconds


def _json(document: Any) -> str | None:
    return None if document is None else json.dumps(document, separators=(",", ":"))
