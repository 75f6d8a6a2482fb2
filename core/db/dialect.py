"""The few places where SQLite and PostgreSQL need different SQL.

Everything else in Cadence is written once with SQLAlchemy Core; when a
statement needs a dialect-specific construct, it asks here.
"""

from __future__ import annotations

import zlib
from typing import Any, Literal

from sqlalchemy import ColumnElement, FromClause, func, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

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
