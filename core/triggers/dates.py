"""Date triggers: a customer's birthday and the anniversary of their first purchase, sent at
the campaign's local time (``send_at``) in the customer's own time zone.

Customers are grouped by time zone (those without a valid one use the
program's). Once a group's local clock has passed ``send_at``, the customers
whose day it is there get one run keyed by the campaign, the local date and the
zone, so firing again that day, hourly or after a restart, sends nothing new.

The scheduler fires every quarter of an hour, so most firings find each zone's day
planned already: one look-up of the day's run keys skips those zones before any
customer is read, and anniversaries are looked for only in the years since the
earliest first purchase, not in all of :data:`YEARS_BACK`.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Store
from core.db.dialect import serialize_writers
from core.models import CampaignRun
from core.planner.runs import PlannedRun
from core.program import Program
from core.rules import join_rule_tables
from core.rules.fields import CUSTOMERS, FIELDS
from core.settings import Settings
from core.triggers.live import LiveTrigger, live_triggers, plan_match

OCCASION = "date"
"""``CampaignRun.occasion`` of a run a date trigger planned."""
YEARS_BACK = 120
"""How far back birthdays and first purchases are looked for."""

_FIRST_PURCHASE = FIELDS["first_purchase_at"]
_ZONE = CUSTOMERS.c.time_zone


async def fire_date_triggers(
    store: Store, program: Program, settings: Settings, now: datetime
) -> list[PlannedRun]:
    """Fire every active date trigger whose local send time has come today, per time zone,
    in one transaction; the runs planned (none new when the day was fired already)."""
    async with store.transaction() as session:
        return await fire_date_triggers_in(session, program, settings, now)


async def fire_date_triggers_in(
    session: AsyncSession, program: Program, settings: Settings, now: datetime
) -> list[PlannedRun]:
    """:func:`fire_date_triggers` inside ``session``'s transaction."""
    triggers = [t for t in await live_triggers(session, program) if t.trigger.date is not None]
    if not triggers:
        return []
    await serialize_writers(session, "planner")
    stored = (await session.execute(select(_ZONE).distinct())).scalars()
    zones = _zone_groups(stored, settings.zone)
    due = []
    for trigger in triggers:
        hour, minute = trigger.trigger.local_time
        for zone, names in sorted(zones.items()):
            local = now.astimezone(ZoneInfo(zone))
            if local.time() >= time(hour, minute):
                key = f"{trigger.trigger.date}:{local.date().isoformat()}:{zone}"
                due.append((trigger, zone, names, local.date(), key))
    done = await _planned_keys(session, [(trigger, key) for trigger, *_, key in due])
    due = [item for item in due if (item[0].campaign.id, item[4]) not in done]
    earliest = None
    if any(trigger.trigger.date != "birthday" for trigger, *_ in due):
        earliest = await session.scalar(select(func.min(_FIRST_PURCHASE.column)))
    planned = []
    for trigger, zone, names, day, key in due:
        matched = _matching(trigger, day, ZoneInfo(zone), names, now, earliest)
        if matched is None or not (await session.execute(matched.limit(1))).first():
            continue
        run = await plan_match(session, program, settings, trigger, matched, key, OCCASION, now)
        if run is not None:
            planned.append(run)
    return planned


async def _planned_keys(
    session: AsyncSession, keyed: list[tuple[LiveTrigger, str]]
) -> set[tuple[int, str]]:
    """Which of the (trigger, run key) pairs have a run that is no longer pending: planning
    them again would send nothing (see :func:`plan_match`), so their customers need no
    reading."""
    if not keyed:
        return set()
    runs = await session.execute(
        select(CampaignRun.campaign_id, CampaignRun.run_key).where(
            CampaignRun.campaign_id.in_(sorted({trigger.campaign.id for trigger, _ in keyed})),
            CampaignRun.run_key.in_(sorted({key for _, key in keyed})),
            CampaignRun.status != "pending",
        )
    )
    return {(campaign_id, key) for campaign_id, key in runs.all()}


def _zone_groups(
    stored: Iterable[str | None], program_zone: ZoneInfo
) -> dict[str, list[str | None]]:
    """The stored ``time_zone`` values by the zone they mean: none, an unknown name or the
    program's own go to the program's zone (which has no group when nobody is there)."""
    groups: dict[str, list[str | None]] = defaultdict(list)
    for name in stored:
        key = program_zone.key if name is None else _zone_key(name) or program_zone.key
        groups[key].append(name)
    return groups


def _zone_key(name: str) -> str | None:
    try:
        return ZoneInfo(name).key
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _matching(
    trigger: LiveTrigger,
    day: date,
    zone: ZoneInfo,
    names: list[str | None],
    now: datetime,
    earliest_purchase: datetime | None = None,
) -> Select[Any] | None:
    """``customer_id`` of the customers in the zone ``names`` whose ``day`` it is; None
    when nobody's can be: an anniversary is looked for only on the days since
    ``earliest_purchase`` (the earliest first purchase stored; none: nobody bought)."""
    in_zone = or_(
        _ZONE.in_([name for name in names if name is not None]),
        _ZONE.is_(None) if None in names else false(),
    )
    rule = trigger.rules.customer_rule
    tables = {CUSTOMERS.name, *(rule.tables if rule is not None else ())}
    on_day: ColumnElement[bool]
    if trigger.trigger.date == "birthday":
        years = range(day.year - YEARS_BACK, day.year + 1)
        on_day = CUSTOMERS.c.birthday.in_(_same_day(day, years))
    else:
        tables.update(_FIRST_PURCHASE.tables)
        years = range(day.year - YEARS_BACK, day.year)
        days = [
            past
            for past in _same_day(day, years)
            if earliest_purchase is not None and _local_midnight(past, 1, zone) > earliest_purchase
        ]
        if not days:
            return None
        on_day = _within_local_days(_FIRST_PURCHASE.column, days, zone)
    conditions = [in_zone, on_day]
    if rule is not None:
        conditions.append(rule.condition(now))
    return (
        select(CUSTOMERS.c.id.label("customer_id"))
        .select_from(join_rule_tables(CUSTOMERS, tables))
        .where(*conditions)
    )


def _same_day(day: date, years: Iterable[int]) -> list[date]:
    """``day``'s month and day in each of ``years``; 29 February is kept on 28 February in
    the years that lack it, so a leap-day birthday is never skipped."""
    dates = []
    for year in years:
        if (day.month, day.day) == (2, 29) and not calendar.isleap(year):
            continue
        dates.append(day.replace(year=year))
        leap_day_kept = (day.month, day.day) == (2, 28) and not calendar.isleap(day.year)
        if leap_day_kept and calendar.isleap(year):
            dates.append(date(year, 2, 29))
    return dates


def _within_local_days(
    column: ColumnElement[datetime], days: list[date], zone: ZoneInfo
) -> ColumnElement[bool]:
    """Whether the moment ``column`` falls on one of ``days`` as the clock reads in ``zone``."""
    ranges = []
    for day in days:
        start, end = _local_midnight(day, 0, zone), _local_midnight(day, 1, zone)
        ranges.append(and_(column >= start, column < end))
    return or_(*ranges) if ranges else false()


def _local_midnight(day: date, later: int, zone: ZoneInfo) -> datetime:
    """The start of the day ``later`` days after ``day`` in ``zone``, in UTC."""
    return datetime.combine(day + timedelta(days=later), time(), zone).astimezone(UTC)
