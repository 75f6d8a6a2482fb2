"""Bulk writes for the events table, the one hot path where the dialects part ways.

Both routes store a batch, skip events already stored (same time and
dedupe key), fold the new ones into the rollups and hold back those dated
after "now", in one transaction. PostgreSQL COPYs into a temporary table and
does the rest in one statement whose RETURNING feeds the rollups, so
concurrent nodes never count an event twice.

SQLite inserts :data:`ROWS_PER_INSERT` rows per statement (one ``executemany``
of multi-row INSERTs: a third cheaper a row than one row per statement) under
its single-writer lock. When every row of the batch was new, the batch itself
is what was stored, so the rollups get per-customer totals worked out in
Python, a few thousand upserts instead of an aggregate over every new event;
otherwise the new rows are found by rowid and rolled up in SQL.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain, compress, repeat
from operator import gt, itemgetter
from typing import Any

from sqlalchemy import Float, column, func, insert, literal, select, table
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.dialect import backend_of, rowcount, upsert
from core.db.types import EPOCH, UtcDateTime, epoch_micros
from core.models import Event, PendingRollup
from core.rollups import TOTALS_COLUMNS, rollup_totals, rollup_upsert, totals_upsert

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

ROWS_PER_INSERT = 100
"""Rows per SQLite INSERT statement: past about 100 the gain levels off (measured)."""


def _sqlite_insert(rows: int) -> str:
    placeholders = f"({', '.join('?' for _ in EVENT_COLUMNS)})"
    return (
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "  # noqa: S608 - constant columns
        f"VALUES {', '.join(repeat(placeholders, rows))} "
        "ON CONFLICT (occurred_at, dedupe_key) DO NOTHING"
    )


_SQLITE_INSERT = _sqlite_insert(ROWS_PER_INSERT)
_compiled_totals = totals_upsert("sqlite").compile(dialect=sqlite.dialect())
assert tuple(_compiled_totals.positiontup or ()) == TOTALS_COLUMNS
_SQLITE_TOTALS = str(_compiled_totals)
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
    ids: tuple[int, ...] = ()
    """With ``with_ids``: the ids of the inserted events (not of those stored before)."""
    customer_ids: tuple[int, ...] = ()
    """With ``with_ids``: the customer of each of ``ids``, in the same order."""


async def store_events(
    session: AsyncSession, rows: list[EventRow], now: datetime, *, with_ids: bool = False
) -> StoredEvents:
    """Store a batch of events idempotently and keep the rollups in step; ``with_ids``
    also returns the new events' ids and customers, for the triggers that react to them."""
    if not rows:
        return StoredEvents(0, 0)
    if backend_of(session) == "postgresql":
        return await _store_postgresql(session, rows, now, with_ids)
    return await _store_sqlite(session, rows, now, with_ids)


async def _store_sqlite(
    session: AsyncSession, rows: list[EventRow], now: datetime, with_ids: bool
) -> StoredEvents:
    # BEGIN IMMEDIATE makes this the only writer, so every rowid above `before` is ours.
    before = (await session.execute(select(func.coalesce(func.max(Event.id), 0)))).scalar_one()
    connection = await session.connection()
    # Rows already carry SQLite's storage form (see core.db.types.UtcDateTime). The INSERT
    # runs in the database thread, which lets go of the GIL while SQLite works, so the
    # rollup totals are worked out meanwhile; they serve if every row turns out new.
    inserting = asyncio.ensure_future(_insert_sqlite(connection, rows))
    try:
        await asyncio.sleep(0)  # let the INSERT start
        # Only the four columns the rollups read: transposing all eight costs four times more.
        customers, kinds, times, values = (list(map(itemgetter(i), rows)) for i in range(4))
        utc_now = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
        future = list(map(gt, times, repeat(epoch_micros(utc_now))))  # held, not counted yet
        columns: tuple[list[Any], ...] = (customers, kinds, times, values)
        if any(future):
            counted = [not later for later in future]
            columns = tuple(list(compress(column, counted)) for column in columns)
        totals = rollup_totals(*columns)
    finally:
        inserted = await inserting
    if inserted == len(rows):
        if totals:
            await connection.exec_driver_sql(_SQLITE_TOTALS, totals)
    else:  # some rows were stored already: roll up what is new, found by rowid
        new = select(Event.customer_id, Event.type, Event.occurred_at, Event.value).where(
            Event.id > before
        )
        await session.execute(rollup_upsert("sqlite", new.subquery(), now))
    held = 0
    if any(future):
        result = await session.execute(
            insert(PendingRollup).from_select(
                ["event_id", "occurred_at"],
                select(Event.id, Event.occurred_at).where(
                    Event.id > before, Event.occurred_at > now
                ),
            )
        )
        held = rowcount(result)
    ids: tuple[int, ...] = ()
    customer_ids: tuple[int, ...] = ()
    if with_ids and inserted:
        stored = select(Event.id, Event.customer_id).where(Event.id > before).order_by(Event.id)
        rows_stored = (await session.execute(stored)).all()
        ids = tuple(row[0] for row in rows_stored)
        customer_ids = tuple(row[1] for row in rows_stored)
    return StoredEvents(inserted, held, ids, customer_ids)


async def _insert_sqlite(connection: Any, rows: list[EventRow]) -> int:
    """Insert ``rows`` (skipping those stored already); returns how many were new."""
    whole = len(rows) - len(rows) % ROWS_PER_INSERT
    width = len(EVENT_COLUMNS) * ROWS_PER_INSERT
    values = tuple(chain.from_iterable(rows[:whole]))  # its slices are the parameter sets
    inserted = 0
    if whole:
        groups = [values[start : start + width] for start in range(0, len(values), width)]
        inserted += rowcount(await connection.exec_driver_sql(_SQLITE_INSERT, groups))
    if whole < len(rows):
        rest = rows[whole:]
        statement = _sqlite_insert(len(rest))
        flat = tuple(chain.from_iterable(rest))
        inserted += rowcount(await connection.exec_driver_sql(statement, flat))
    return inserted


async def _store_postgresql(
    session: AsyncSession, rows: list[EventRow], now: datetime, with_ids: bool
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
        *(
            (
                select(func.array_agg(aggregate_order_by(field, inserted.c.id))).scalar_subquery()
                if with_ids
                else literal(None)
            )
            for field in (inserted.c.id, inserted.c.customer_id)
        ),
    ).add_cte(rolled)
    result = (await session.execute(counts)).one()
    await connection.exec_driver_sql("TRUNCATE events_incoming")
    return StoredEvents(
        int(result[0]), int(result[1]), tuple(result[2] or ()), tuple(result[3] or ())
    )
