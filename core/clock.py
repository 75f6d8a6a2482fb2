"""The one source of "now".

Nothing in Cadence calls ``datetime.now()`` directly. Commands take ``--now``
to pin the clock, tests freeze it, and the simulator moves it forward, so
every date comparison in the engine is deterministic and replayable.
Anything dated after :func:`now` is treated as not having happened yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import CadenceError


class Clock(Protocol):
    """Something that tells the time, always as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until moved, for ``--now``, tests and simulation."""

    def __init__(self, at: datetime) -> None:
        self._at = as_utc(at)

    def now(self) -> datetime:
        return self._at

    def advance(self, by: timedelta) -> None:
        self._at += by

    def set(self, at: datetime) -> None:
        self._at = as_utc(at)


class ShiftedClock:
    """The wall clock moved by a fixed offset: time flows, from another starting point
    (the demo runs as of a daytime moment when it is night for its customers)."""

    def __init__(self, offset: timedelta) -> None:
        self._offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


_current: Clock = SystemClock()


def now() -> datetime:
    """The current time as an aware UTC datetime."""
    return _current.now()


def is_wall_clock() -> bool:
    """Whether "now" is the machine's wall clock (no ``--now``, no test or simulation)."""
    return isinstance(_current, SystemClock)


def install(clock: Clock) -> None:
    """Make ``clock`` the process-wide source of time."""
    global _current
    _current = clock


@contextmanager
def using(clock: Clock) -> Iterator[Clock]:
    """Use ``clock`` inside the block, then restore the previous one."""
    previous = _current
    install(clock)
    try:
        yield clock
    finally:
        install(previous)


def as_utc(moment: datetime, assume: ZoneInfo | None = None) -> datetime:
    """Return ``moment`` in UTC; a naive value is read in ``assume`` (UTC by default)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=assume or UTC)
    return moment.astimezone(UTC)


def stored_zone(name: str | None) -> ZoneInfo | None:
    """The zone a customer's stored ``time_zone`` names; None when empty or unknown (imports
    check zones, so an odd stored value means the program's zone, as no zone does)."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_moment(text: str, assume: ZoneInfo | None = None) -> datetime:
    """Parse an ISO 8601 date or date-time (``--now``, import files) into aware UTC.

    A bare date means midnight; a value without an offset is read in ``assume``.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            return as_utc(datetime.combine(date.fromisoformat(value), time()), assume)
        return as_utc(datetime.fromisoformat(value), assume)
    except ValueError:
        raise CadenceError(
            f"cannot read {text!r} as a date or time; "
            "use ISO 8601, e.g. 2026-11-23 or 2026-11-23T09:30:00+01:00"
        ) from None
