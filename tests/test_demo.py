"""The demo's moment: it runs as of a time its customers may be sent marketing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core import clock
from core.demo import daytime_moment
from core.demo_data import TIME_ZONES
from core.errors import CadenceError
from core.policy.quiet_hours import parse_quiet_hours

QUIET = parse_quiet_hours("21:00-08:00")


def _awake_everywhere(moment: datetime) -> bool:
    return all(QUIET.release(moment, ZoneInfo(zone)) is None for zone in TIME_ZONES)


def test_a_daytime_start_keeps_its_moment() -> None:
    noon = datetime(2026, 12, 4, 12, 7, tzinfo=UTC)
    assert daytime_moment(noon, QUIET) == noon


def test_a_night_start_runs_as_of_the_evening_before_while_everyone_is_awake() -> None:
    night = datetime(2026, 12, 4, 2, 10, tzinfo=UTC)
    moment = daytime_moment(night, QUIET)
    # Rome and Warsaw (UTC+1 in December) go quiet at 20:00 UTC; an hour's margin before it.
    assert moment == datetime(2026, 12, 3, 18, 45, tzinfo=UTC)
    assert _awake_everywhere(moment) and _awake_everywhere(moment + timedelta(hours=1))
    assert not _awake_everywhere(moment + timedelta(minutes=75))


def test_no_quiet_hours_keep_the_moment() -> None:
    night = datetime(2026, 12, 4, 2, 10, tzinfo=UTC)
    assert daytime_moment(night, None) == night


def test_quiet_hours_that_leave_no_waking_hour_say_what_to_change() -> None:
    with pytest.raises(CadenceError, match=r"quiet_hours"):
        daytime_moment(datetime(2026, 12, 4, 2, tzinfo=UTC), parse_quiet_hours("08:30-08:00"))


def test_a_shifted_clock_flows_from_its_new_start() -> None:
    shifted = clock.ShiftedClock(timedelta(hours=-7))
    first = shifted.now()
    assert abs(first - (datetime.now(UTC) - timedelta(hours=7))) < timedelta(seconds=1)
    assert shifted.now() >= first
    with clock.using(shifted):
        assert not clock.is_wall_clock()
    assert clock.is_wall_clock()
