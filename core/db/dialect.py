"""The few places where SQLite and PostgreSQL need different SQL.

Everything else in Cadence is written once with SQLAlchemy Core; when a
statement needs a dialect-specific construct, it asks here.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Float,
    FromClause,
    MetaData,
    SQLColumnExpression,
    Table,
    cast,
    func,
    literal,
    text,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.schema import CreateIndex, CreateTable

from core.db.types import UtcDateTime, epoch_micros

Backend = Literal["sqlite", "postgresql"]


def backend_of(session: AsyncSession) -> Backend:
    name = session.get_bind().dialect.name
    if name not in ("sqlite", "postgresql"):
        raise RuntimeError(f"unsupported database dialect {name!r}")
    return name  # type: ignore[return-value]


def upsert(backend: Backend, table: FromClause) -> Any:
    """An INSERT that supports ``on_conflict_do_update`` / ``_do_nothing`` and ``excluded``.

    Both dialects' constructs share the same API; the return type is ``Any``
    because SQLAlchemy types them as unrelated classes.
    """
    make_insert: Any = postgresql.insert if backend == "postgresql" else sqlite.insert
    return make_insert(table)


def least(backend: Backend, a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    """The smaller of two values, ignoring NULLs (SQLite's ``min(a, b)`` would return NULL)."""
    if backend == "postgresql":
        return func.least(a, b)
    return func.min(func.coalesce(a, b), func.coalesce(b, a))


def greatest(backend: Backend, a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    """The larger of two values, ignoring NULLs."""
    if backend == "postgresql":
        return func.greatest(a, b)
    return func.max(func.coalesce(a, b), func.coalesce(b, a))


async def serialize_writers(session: AsyncSession, name: str) -> None:
    """Let one writer at a time run the critical section ``name`` until the transaction ends.

    SQLite already has a single writer (``BEGIN IMMEDIATE``); PostgreSQL takes
    a transaction-scoped advisory lock, so several nodes queue rather than race.
    """
    if backend_of(session) == "postgresql":
        key = zlib.crc32(f"cadence:{name}".encode())
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


_SCRATCH_DEFINITIONS: dict[tuple[Any, ...], Table] = {}
_MAX_SCRATCH_DEFINITIONS = 256


def scratch_definition(name: str, columns: Sequence[Column[Any]]) -> Table:
    """A temporary table ``name`` with ``columns``: the same :class:`Table` object each time
    for the same name and columns (name, type, key, nullability), for a scratch table whose
    columns are worked out per call (from the rules a pass reads, say).

    SQLAlchemy keys its compiled-statement cache on a table's identity: a new ``Table``
    per call compiles every statement on it again, and fills the cache with statements
    never used again. Definitions only: give a shared one no indexes after the fact.
    """
    layout = (
        name,
        *(
            (c.name, repr(c.type), c.primary_key, c.nullable, c.identity is not None)
            for c in columns
        ),
    )
    table = _SCRATCH_DEFINITIONS.get(layout)
    if table is None:
        if len(_SCRATCH_DEFINITIONS) >= _MAX_SCRATCH_DEFINITIONS:
            _SCRATCH_DEFINITIONS.clear()
        table = Table(name, MetaData(), *columns, prefixes=["TEMPORARY"])
        _SCRATCH_DEFINITIONS[layout] = table
    return table


async def scratch_table(
    session: AsyncSession, table: Table, *, until: Literal["commit", "dropped"] = "commit"
) -> None:
    """Create ``table`` empty as a temporary table of this connection.

    By default it lasts until this transaction ends: PostgreSQL drops it at
    commit; SQLite keeps temporary tables for the connection, so a leftover
    from an earlier transaction is dropped first. With ``until="dropped"`` it
    outlives the transaction on both, for later transactions on the same
    connection (see :meth:`core.db.Store.pinned`), until :func:`drop_scratch_table`.
    """
    connection = await session.connection()
    await drop_scratch_table(session, table)
    create, *indexes = _creation(table, connection.dialect)
    if backend_of(session) == "postgresql":
        suffix = " ON COMMIT DROP" if until == "commit" else ""
        await connection.exec_driver_sql(f"{create}{suffix}")
    else:
        for statement in (create, *indexes):
            await connection.exec_driver_sql(statement)


@lru_cache(maxsize=512)
def _creation(table: Table, dialect: Dialect) -> tuple[str, ...]:
    """The ``CREATE TABLE`` of ``table``, then a ``CREATE INDEX`` per index it has, compiled
    once: DDL has no compiled cache, and a planner tick creates four scratch tables (3 ms of
    compiling a tick, several ticks a simulated hour)."""
    return (
        str(CreateTable(table).compile(dialect=dialect)).rstrip(),
        *(
            str(CreateIndex(index).compile(dialect=dialect))
            for index in sorted(table.indexes, key=lambda index: str(index.name))
        ),
    )


async def analyze_scratch_table(session: AsyncSession, table: Table) -> None:
    """Give PostgreSQL's planner statistics on a filled temporary ``table``: autovacuum
    never analyses temporary tables, and without statistics the planner sorts where it
    should hash. SQLite's planner does without."""
    if backend_of(session) == "postgresql":
        connection = await session.connection()
        await connection.exec_driver_sql(f'ANALYZE "{table.name}"')


async def drop_scratch_table(session: AsyncSession, table: Table) -> None:
    """Drop the temporary ``table`` if this connection has it."""
    schema = "pg_temp" if backend_of(session) == "postgresql" else "temp"
    connection = await session.connection()
    await connection.exec_driver_sql(f'DROP TABLE IF EXISTS {schema}."{table.name}"')


async def skip_jit(session: AsyncSession) -> None:
    """Turn PostgreSQL's JIT compilation off for the rest of this transaction: for a few
    big aggregates over a million rows it costs more than it saves (measured: 1.4 s of
    compiling in a 6.3 s stage KPI query). SQLite has none."""
    if backend_of(session) == "postgresql":
        await session.execute(text("SET LOCAL jit = off"))


def rowcount(result: Any) -> int:
    """Rows a write touched (``CursorResult.rowcount``: exact for INSERT ... SELECT, UPDATE
    and DELETE on both drivers, and for ``executemany`` on SQLite)."""
    return int(result.rowcount)


def age_in_days(
    backend: Backend, moment: SQLColumnExpression[Any], now: datetime
) -> ColumnElement[Any]:
    """Fractional days from ``moment`` (a time column) to ``now``."""
    if backend == "postgresql":
        seconds = func.extract("epoch", literal(now, UtcDateTime()) - moment)
        return cast(seconds, Float) / 86_400.0
    # SQLite stores times as epoch microseconds (see core.db.types.UtcDateTime).
    now_micros = literal(epoch_micros(now.astimezone(UTC).replace(tzinfo=None)), BigInteger)
    return (now_micros - type_coerce(moment, BigInteger)) / 86_400e6


def day_number(backend: Backend, moment: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    """The UTC calendar day of ``moment`` as a number: equal for two times on the same day."""
    if backend == "postgresql":
        return cast(func.floor(func.extract("epoch", moment) / 86_400), BigInteger)
    return type_coerce(moment, BigInteger) // 86_400_000_000  # SQLite: epoch microseconds


def epoch_seconds(backend: Backend, moment: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    """Whole seconds from 1970-01-01 UTC to ``moment`` (a time column), as an integer."""
    if backend == "postgresql":
        return cast(func.floor(func.extract("epoch", moment)), BigInteger)
    return type_coerce(moment, BigInteger) // 1_000_000  # SQLite: epoch microseconds
