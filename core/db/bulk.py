"""Bulk writes for the events table, the one hot path where the dialects part ways.

Both routes store a batch, skip events already stored (same time and
dedupe key), fold the new ones into the rollups and hold back those dated
after "now", in one transaction. SQLite runs ``executemany`` under its
single-writer lock and finds the new rows by rowid; PostgreSQL COPYs into a
temporary table and does the rest in one statement whose RETURNING feeds the
rollups, so concurrent nodes never count an event twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, column, func, insert, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.dialect import backend_of, upsert
from core.db.types import EPOCH, UtcDateTime
from core.models import Event, PendingRollup
from core.rollups import rollup_upsert

EVENT_COLUMNS = (
    "customer_id",
    "type",
    "occurred_at",
    "value",
    "properties",
    "source",
    "idempotency_key",
    "dedupe_key",
)
"""Field order of an event row: ``occurred_at`` in epoch microseconds (UTC),
``properties`` JSON text."""

EventRow = tuple[int, str, int, float | None, str | None, str, str | None, int]

_MICROSECOND = timedelta(microseconds=1)

_SQLITE_INSERT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "  # noqa: S608 - a constant column list
    f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)}) "
    "ON CONFLICT (occurred_at, dedupe_key) DO NOTHING"
)
_PG_STAGING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS events_incoming ("
    "customer_id bigint, type varchar(64), occurred_at timestamp, value double precision, "
    "properties jsonb, source varchar(64), idempotency_key varchar(255), dedupe_key bigint"
    ")"
)
_incoming = table(
    "events_incoming",
    *(column(name) for name in EVENT_COLUMNS if name not in ("occurred_at", "value")),
    column("occurred_at", UtcDateTime()),
    column("value", Float()),
)


@dataclass(frozen=True, slots=True)
class StoredEvents:
    inserted: int
    held: int
    """Inserted events dated after "now", waiting to be rolled up."""


async def store_events(session: AsyncSession, rows: list[EventRow], now: datetime) -> StoredEvents:
    """Store a batch of events idempotently and keep the rollups in step."""
    if not rows:
        return StoredEvents(0, 0)
    if backend_of(session) == "postgresql":
        return await _store_postgresql(session, rows, now)
    return await _store_sqlite(session, rows, now)


async def _store_sqlite(session: AsyncSession, rows: list[EventRow], now: datetime) -> StoredEvents:
    # BEGIN IMMEDIATE makes this the only writer, so every rowid above `before` is ours.
    before = (await session.execute(select(func.coalesce(func.max(Event.id), 0)))).scalar_one()
    connection = await session.connection()
    # Rows already carry SQLite's storage form (see core.db.types.UtcDateTime).
    result = await connection.exec_driver_sql(_SQLITE_INSERT, rows)
    new = select(Event.customer_id, Event.type, Event.occurred_at, Event.value).where(
        Event.id > before
    )
    await session.execute(rollup_upsert("sqlite", new.subquery(), now))
    held = await session.execute(
        insert(PendingRollup).from_select(
            ["event_id", "occurred_at"],
            select(Event.id, Event.occurred_at).where(Event.id > before, Event.occurred_at > now),
        )
    )
    return StoredEvents(_rowcount(result), _rowcount(held))


async def _store_postgresql(
    session: AsyncSession, rows: list[EventRow], now: datetime
) -> StoredEvents:
    connection = await session.connection()
    await connection.exec_driver_sql(_PG_STAGING)
    raw: Any = (await connection.get_raw_connection()).driver_connection
    records = [(c, t, EPOCH + at * _MICROSECOND, v, p, s, k, d) for c, t, at, v, p, s, k, d in rows]
    await raw.copy_records_to_table("events_incoming", records=records, columns=EVENT_COLUMNS)
    inserted = (
        upsert("postgresql", Event.__table__)
        .from_select(EVENT_COLUMNS, select(*(_incoming.c[name] for name in EVENT_COLUMNS)))
        .on_conflict_do_nothing(index_elements=["occurred_at", "dedupe_key"])
        .returning(Event.id, Event.customer_id, Event.type, Event.occurred_at, Event.value)
        .cte("inserted")
    )
    held = (
        insert(PendingRollup)
        .from_select(
            ["event_id", "occurred_at"],
            select(inserted.c.id, inserted.c.occurred_at).where(inserted.c.occurred_at > now),
        )
        .returning(PendingRollup.event_id)
        .cte("held")
    )
    rolled = (
        rollup_upsert("postgresql", inserted, now).returning(column("customer_id")).cte("rolled")
    )
    counts = select(
        select(func.count()).select_from(inserted).scalar_subquery(),
        select(func.count()).select_from(held).scalar_subquery(),
    ).add_cte(rolled)
    result = (await session.execute(counts)).one()
    await connection.exec_driver_sql("TRUNCATE events_incoming")
    return StoredEvents(int(result[0]), int(result[1]))


def _rowcount(result: Any) -> int:
    """Rows a write touched (``CursorResult.rowcount``; SQLite counts executemany exactly)."""
    return int(result.rowcount)
