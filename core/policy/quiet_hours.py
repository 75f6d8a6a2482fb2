"""Quiet hours: a daily window, in the customer's own time zone, when marketing waits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class QuietHours:
    """From ``start`` to ``end`` local time, every day; ``start > end`` spans midnight."""

    start: time
    end: time

    def release(self, now: datetime, zone: ZoneInfo) -> datetime | None:
        """When a message due at ``now`` may go out in ``zone``: None if now is outside the
        window, else the (UTC) moment the window ends."""
        local = now.astimezone(zone)
        moment = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            inside = self.start <= moment < self.end
        else:
            inside = moment >= self.start or moment < self.end
        if not inside:
            return None
        end_day = local.date() if moment < self.end else local.date() + timedelta(days=1)
        # Built from the wall clock, so the end is right across a daylight-saving change.
        opens = datetime.combine(end_day, self.end, tzinfo=zone)
        return opens.astimezone(UTC)


def parse_quiet_hours(text: str) -> QuietHours:
    """``"21:00-08:00"`` as :class:`QuietHours`; raises ValueError with the expected form."""
    match = _WINDOW.match(text.strip())
    if match is None:
        raise ValueError(f'quiet hours are written "HH:MM-HH:MM", e.g. "21:00-08:00", not {text!r}')
    hour, minute, end_hour, end_minute = (int(part) for part in match.groups())
    try:
        start, end = time(hour, minute), time(end_hour, end_minute)
    except ValueError:
        raise ValueError(f"quiet hours {text!r}: hours run 0-23 and minutes 0-59") from None
    if start == end:
        raise ValueError(f"quiet hours {text!r} start and end at the same time")
    return QuietHours(start, end)
