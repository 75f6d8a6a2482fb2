"""A moment plus a duration in SQL, on both dialects.

PostgreSQL adds an ``interval`` to a ``timestamp``; SQLite stores moments as
epoch microseconds (see :class:`core.db.types.UtcDateTime`), so there the
duration is added as microseconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Interval, literal, type_coerce

from core.db.dialect import Backend
from core.db.types import UtcDateTime

_MICROSECOND = timedelta(microseconds=1)


def shifted(
    backend: Backend, moment: ColumnElement[Any] | datetime, delta: timedelta
) -> ColumnElement[datetime]:
    """``moment`` (a time column, or a value) moved ``delta`` later."""
    if isinstance(moment, datetime):
        # A value shifts in Python: coercing its parameter would skip its type's binding.
        return literal(moment + delta, UtcDateTime())
    if backend == "postgresql":
        return type_coerce(moment + literal(delta, Interval()), UtcDateTime())
    return type_coerce(type_coerce(moment, BigInteger) + delta // _MICROSECOND, UtcDateTime())
