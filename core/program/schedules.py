"""Cycle schedules: cron (``0 10 * * MON``) or an interval (``every 2w``), in a time zone.

Both become APScheduler 3 triggers, which the planner asks for the latest
slot that came round and the console for the next one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.durations import DURATION_FORMAT, parse_duration

SCHEDULE_FORMAT = 'cron (minute hour day month weekday, e.g. "0 10 * * MON") or "every 2w"'
_EVERY = "every "


def schedule_trigger(schedule: str, zone: ZoneInfo, start: datetime) -> BaseTrigger:
    """The trigger of ``schedule`` read in ``zone``; an interval counts from ``start``.

    Raises ValueError, worded for the program file, when ``schedule`` is neither form.
    """
    if schedule.startswith(_EVERY):
        every = parse_duration(schedule.removeprefix(_EVERY).strip())
        if every is None or every <= timedelta(0):
            raise ValueError(f"an interval is `every` and {DURATION_FORMAT}, not {schedule!r}")
        return IntervalTrigger(seconds=int(every.total_seconds()), start_date=start, timezone=zone)
    try:
        return CronTrigger.from_crontab(schedule, timezone=zone)
    except ValueError as error:
        raise ValueError(f"not a schedule: {SCHEDULE_FORMAT}: {error}") from None
