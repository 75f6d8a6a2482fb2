"""The one source of "now": parsing moments, the fixed clock and swapping clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from core import clock
from core.errors import CadenceError

LISBON = ZoneInfo("Europe/Lisbon")
WARSAW = ZoneInfo("Europe/Warsaw")


@pytest.mark.parametrize(
    ("text", "assume", "expected"),
    [
        ("2026-11-23", None, datetime(2026, 11, 23, tzinfo=UTC)),
        ("  2026-11-23  ", None, datetime(2026, 11, 23, tzinfo=UTC)),
        ("2026-11-23T09:30:00", None, datetime(2026, 11, 23, 9, 30, tzinfo=UTC)),
        ("2026-11-23 09:30", None, datetime(2026, 11, 23, 9, 30, tzinfo=UTC)),
        ("2026-11-23T09:30:00Z", None, datetime(2026, 11, 23, 9, 30, tzinfo=UTC)),
        ("2026-11-23T09:30:00+01:00", None, datetime(2026, 11, 23, 8, 30, tzinfo=UTC)),
        ("2026-11-23T09:30:00-05:30", None, datetime(2026, 11, 23, 15, 0, tzinfo=UTC)),
        (
            "2026-11-23T09:30:00.123456+00:00",
            None,
            datetime(2026, 11, 23, 9, 30, 0, 123456, tzinfo=UTC),
        ),
        # No offset: read in the assumed zone (Warsaw is UTC+1 in November).
        ("2026-11-23T09:30:00", WARSAW, datetime(2026, 11, 23, 8, 30, tzinfo=UTC)),
        ("2026-11-23", WARSAW, datetime(2026, 11, 22, 23, 0, tzinfo=UTC)),
        # Summer time: Lisbon is UTC+1 in July.
        ("2026-07-01T12:00:00", LISBON, datetime(2026, 7, 1, 11, 0, tzinfo=UTC)),
        # An explicit offset wins over the assumed zone.
        ("2026-07-01T12:00:00+00:00", LISBON, datetime(2026, 7, 1, 12, 0, tzinfo=UTC)),
    ],
)
def test_parse_moment(text: str, assume: ZoneInfo | None, expected: datetime) -> None:
    parsed = clock.parse_moment(text, assume)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-13-01", "2026-02-30", "23/11/2026", "2026-11-23T25:00"]
)
def test_parse_moment_refuses_what_is_not_iso_8601(text: str) -> None:
    with pytest.raises(CadenceError) as caught:
        clock.parse_moment(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "ISO 8601" in message


def test_as_utc_converts_aware_and_reads_naive_in_the_assumed_zone() -> None:
    aware = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert clock.as_utc(aware) == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert clock.as_utc(datetime(2026, 1, 1, 12)) == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert clock.as_utc(datetime(2026, 1, 1, 12), WARSAW) == datetime(2026, 1, 1, 11, tzinfo=UTC)


def test_fixed_clock_stands_still_until_moved() -> None:
    start = datetime(2026, 11, 23, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    fixed = clock.FixedClock(start)
    assert fixed.now() == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert fixed.now().tzinfo is UTC
    assert fixed.now() == fixed.now()

    fixed.advance(timedelta(days=1, minutes=5))
    assert fixed.now() == datetime(2026, 11, 24, 12, 5, tzinfo=UTC)

    fixed.set(datetime(2027, 1, 1))  # naive means UTC
    assert fixed.now() == datetime(2027, 1, 1, tzinfo=UTC)
    assert fixed.now().tzinfo is UTC


def test_system_clock_is_aware_utc() -> None:
    before = datetime.now(UTC)
    moment = clock.SystemClock().now()
    after = datetime.now(UTC)
    assert moment.tzinfo is UTC
    assert before <= moment <= after


def test_using_swaps_the_clock_and_restores_it() -> None:
    outer = clock.FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    inner = clock.FixedClock(datetime(2030, 6, 15, tzinfo=UTC))
    with clock.using(outer):
        assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC)
        with clock.using(inner) as installed:
            assert installed is inner
            assert clock.now() == datetime(2030, 6, 15, tzinfo=UTC)
            inner.advance(timedelta(hours=3))
            assert clock.now() == datetime(2030, 6, 15, 3, tzinfo=UTC)
        assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC)
    assert isinstance(clock.now(), datetime)
    assert clock.now().tzinfo is UTC


def test_using_restores_the_clock_after_an_error() -> None:
    pinned = clock.FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    with clock.using(pinned):
        with pytest.raises(RuntimeError), clock.using(clock.FixedClock(datetime(1999, 1, 1))):
            raise RuntimeError("boom")
        assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC)


def test_frozen_clock_fixture_pins_now(frozen_clock: clock.FixedClock) -> None:
    from tests.conftest import NOW

    assert clock.now() == NOW
    frozen_clock.advance(timedelta(seconds=1))
    assert clock.now() == NOW + timedelta(seconds=1)
