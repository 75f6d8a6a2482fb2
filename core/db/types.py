"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A moment in time, stored as naive UTC and read back as aware UTC.

    SQLite has no time zones and PostgreSQL's ``timestamptz`` would convert
    to the session zone; storing naive UTC keeps comparisons identical on
    both, including the raw bulk paths that bypass the ORM.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def sqlite_timestamp(moment: datetime) -> str:
    """The text SQLAlchemy stores for a naive UTC datetime on SQLite, for raw bulk writes."""
    return moment.isoformat(" ", "microseconds")


JsonDocument = JSON().with_variant(JSONB(), "postgresql")
"""A JSON object column: JSON text on SQLite, ``jsonb`` on PostgreSQL."""

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit key; SQLite needs plain INTEGER for a rowid alias."""
