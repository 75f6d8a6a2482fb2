"""Parsers for the fields of imported rows: each returns a clean value or raises RowError.

A ``None`` or empty value means "not given" and comes back as ``None``;
``required`` turns that into an error.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.ingest.source import RowError

_EMAIL = re.compile(
    r"^[^@\s\"(),:;<>\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_PHONE_NOISE = re.compile(r"[\s().-]")
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
UTC_ZONE = ZoneInfo("UTC")
_TRUE = frozenset({"1", "true", "yes", "y", "t", "on"})
_FALSE = frozenset({"0", "false", "no", "n", "f", "off"})


def given(value: Any) -> bool:
    return value is not None and value != ""


def text(value: Any, field: str, *, max_length: int, required: bool = False) -> str | None:
    """A single-line string of at most ``max_length`` characters."""
    if not given(value):
        if required:
            raise RowError(f"missing required field `{field}`")
        return None
    if not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RowError(f"`{field}` must be text, not {type(value).__name__}")
        value = str(value)
    if "\n" in value or "\r" in value:
        raise RowError(f"`{field}` contains a line break")
    if "\x00" in value:
        raise RowError(f"`{field}` contains a NUL character")
    value = value.strip()
    if len(value) > max_length:
        raise RowError(f"`{field}` is longer than {max_length} characters")
    if required and not value:
        raise RowError(f"missing required field `{field}`")
    return value or None


def email(value: Any) -> str | None:
    """An e-mail address; the domain is lower-cased, the local part kept as written."""
    address = text(value, "email", max_length=254)
    if address is None:
        return None
    if not _EMAIL.match(address):
        raise RowError(f"`email` {address!r} is not a valid e-mail address")
    local, domain = address.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def phone(value: Any) -> str | None:
    """A phone number, digits with an optional leading +, separators removed."""
    number = text(value, "phone", max_length=32)
    if number is None:
        return None
    compact = _PHONE_NOISE.sub("", number)
    if not _PHONE.match(compact):
        raise RowError(f"`phone` {number!r} is not a phone number (6 to 15 digits, optional +)")
    return compact


def locale(value: Any) -> str | None:
    tag = text(value, "locale", max_length=35)
    if tag is not None and not _LOCALE.match(tag):
        raise RowError(f"`locale` {tag!r} is not a language tag such as 'pt-PT'")
    return tag


def time_zone(value: Any) -> str | None:
    name = text(value, "time_zone", max_length=64)
    if name is not None:
        zone_of(name)
    return name


@lru_cache(maxsize=1024)
def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RowError(
            f"`time_zone` {name!r} is not an IANA time zone such as 'Europe/Lisbon'"
        ) from None


def event_type(value: Any) -> str:
    name = text(value, "type", max_length=64, required=True)
    assert name is not None
    name = name.lower()
    if not _EVENT_TYPE.match(name):
        raise RowError(f"`type` {name!r} must start with a letter and use only a-z, 0-9, _ . : -")
    return name


def moment(value: Any, field: str, zone: ZoneInfo, *, required: bool = False) -> datetime | None:
    """A date or date-time as naive UTC; without an offset it is read in ``zone``.

    Accepts ISO 8601 (``2026-03-01``, ``2026-03-01T10:00:00Z``, ``...+01:00``)
    and compact dates (``20260301``).
    """
    if not given(value):
        if required:
            raise RowError(f"missing required field `{field}`")
        return None
    raw = str(value).strip()
    try:
        if len(raw) == 8 and raw.isdigit():
            parsed = datetime(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
        else:
            parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise RowError(
            f"`{field}` {raw[:40]!r} is not a date or time; use ISO 8601 such as "
            "2026-03-01 or 2026-03-01T10:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        if zone is UTC_ZONE:
            return parsed
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC).replace(tzinfo=None)


def calendar_date(value: Any, field: str) -> date | None:
    if not given(value):
        return None
    raw = str(value).strip()
    try:
        if len(raw) == 8 and raw.isdigit():
            return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
        return date.fromisoformat(raw)
    except ValueError:
        raise RowError(f"`{field}` {raw[:40]!r} is not a date such as 1990-05-17") from None


def flag(value: Any, field: str) -> bool | None:
    if not given(value):
        return None
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise RowError(f"`{field}` {str(value)[:20]!r} is not yes/no, true/false or 1/0")


def number(value: Any, field: str, *, required: bool = False) -> float | None:
    """A finite decimal number written with a dot (``1234.50``)."""
    if not given(value):
        if required:
            raise RowError(f"missing required field `{field}`")
        return None
    if isinstance(value, bool):
        raise RowError(f"`{field}` must be a number, not true/false")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise RowError(f"`{field}` {str(value)[:40]!r} is not a number such as 1234.50") from None
    if not math.isfinite(result) or abs(result) >= 1e14:
        raise RowError(f"`{field}` {value!r} is out of range")
    return result


def whole_number(value: Any, field: str, *, required: bool = False) -> int | None:
    result = number(value, field, required=required)
    if result is None:
        return None
    if not result.is_integer():
        raise RowError(f"`{field}` {value!r} must be a whole number")
    return int(result)


def json_object(value: Any, field: str) -> dict[str, Any] | None:
    if not given(value):
        return None
    if not isinstance(value, dict):
        raise RowError(f"`{field}` must be a JSON object")
    return value


def without_nul(document: Any, field: str) -> None:
    """Refuse a NUL character anywhere in a JSON document (keys and string values):
    PostgreSQL stores neither ``\\u0000`` in jsonb nor NUL in text, so the row must not
    reach the database, where it would fail its whole batch."""
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                raise RowError(f"`{field}` contains a NUL character")
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
