"""Daily KPI snapshots: each day's stage and program KPIs, kept so trends read a few rows.

A day's snapshot describes the moment the day ended in the program's time zone (or
now, for today): the stage KPIs (:mod:`core.measure.stages`) and the program-wide ones
(:mod:`core.measure.programme`) over the settings' ``measure.kpi_window_days`` up to
that moment, as rows of ``kpi_snapshots`` (program-wide rows have an empty stage).
Both read only what happened up to the moment, the stage history included, so writing a
past day again gives the same numbers whatever happened since; writing a day replaces
its rows whole, so the scheduler and ``cadence report snapshot`` may both write one.

The KPIs are computed in a reading transaction and only written in a short one: on
SQLite the write lock is held for the few rows, not for the reading of a million
customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.db import Store
from core.db.dialect import serialize_writers
from core.errors import CadenceError
from core.measure.kpis import KpiValue, Window
from core.measure.programme import programme_kpis
from core.measure.stages import stage_kpis
from core.models import KpiSnapshot
from core.program import Program
from core.settings import Settings

PROGRAMME = ""
"""The ``stage`` of the program-wide rows: no stage name is empty."""
CATCH_UP_DAYS = 7
"""How far back the daily job fills days that have no snapshot (the scheduler was down)."""


@dataclass(frozen=True)
class SnapshotWritten:
    """What writing one day's snapshot did."""

    day: date
    at: datetime
    """The moment the KPIs describe: the day's end, or now for today."""
    rows: int
    stages: int
    customers: int


def day_end(day: date, zone: ZoneInfo) -> datetime:
    """When ``day`` ends in ``zone``, in UTC: the midnight that starts the next day."""
    return clock.as_utc(datetime.combine(day + timedelta(days=1), time(), zone))


async def write_kpi_snapshot(
    store: Store, program: Program, settings: Settings, day: date
) -> SnapshotWritten:
    """Compute ``day``'s KPIs from the raw data and replace its snapshot with them."""
    zone, now = settings.zone, clock.now()
    if day > now.astimezone(zone).date():
        raise CadenceError(f"{day} has not begun yet (it is {now.astimezone(zone):%Y-%m-%d})")
    window = Window(min(day_end(day, zone), now), settings.measure.kpi_window_days)
    async with store.reading() as session:
        stages = await stage_kpis(session, program, window)
        programme = await programme_kpis(session, program, window)
    rows: list[dict[str, Any]] = []

    def add(stage: str, counts: dict[str, float], kpis: dict[str, KpiValue]) -> None:
        base = {"day": day, "stage": stage, "window_days": window.days, "computed_at": now}
        for name, value in counts.items():
            rows.append({**base, "kpi": name, "value": value, "target": None})
        for name, kpi in kpis.items():
            rows.append({**base, "kpi": name, "value": kpi.value, "target": kpi.target})

    for stage in stages:
        add(stage.name, stage.counts(), stage.kpis())
    add(PROGRAMME, programme.counts(), programme.kpis())
    async with store.transaction() as session:
        await serialize_writers(session, "kpi-snapshots")
        await session.execute(delete(KpiSnapshot).where(KpiSnapshot.day == day))
        await session.execute(insert(KpiSnapshot), rows)
    return SnapshotWritten(day, window.end, len(rows), len(stages), programme.customers)


async def write_due_snapshots(
    store: Store, program: Program, settings: Settings, now: datetime
) -> dict[str, int]:
    """The daily job: yesterday's snapshot (written again if it exists), and any of the
    :data:`CATCH_UP_DAYS` days before it that has none. Returns the job's counts."""
    yesterday = now.astimezone(settings.zone).date() - timedelta(days=1)
    since = yesterday - timedelta(days=CATCH_UP_DAYS)
    async with store.reading() as session:
        present = set(
            (
                await session.execute(
                    select(KpiSnapshot.day)
                    .where(KpiSnapshot.day >= since, KpiSnapshot.day < yesterday)
                    .distinct()
                )
            ).scalars()
        )
    missing = [since + timedelta(days=n) for n in range((yesterday - since).days)]
    days = [day for day in missing if day not in present] + [yesterday]
    written = [await write_kpi_snapshot(store, program, settings, day) for day in days]
    return {
        "days": len(written),
        "rows": sum(item.rows for item in written),
        "customers": written[-1].customers,
    }


@dataclass(frozen=True)
class SnapshotDay:
    """One stage's (or the program's) KPIs on one day, as its snapshot holds them."""

    day: date
    values: dict[str, float | None]
    targets: dict[str, float]
    window_days: int


async def kpi_trends(
    session: AsyncSession, *, until: date, days: int
) -> dict[str, list[SnapshotDay]]:
    """Per stage (:data:`PROGRAMME` for the program), the snapshots of the ``days`` days up
    to ``until``, oldest first; days without a snapshot are left out."""
    rows = await session.execute(
        select(
            KpiSnapshot.stage,
            KpiSnapshot.day,
            KpiSnapshot.kpi,
            KpiSnapshot.value,
            KpiSnapshot.target,
            KpiSnapshot.window_days,
        )
        .where(KpiSnapshot.day > until - timedelta(days=days), KpiSnapshot.day <= until)
        .order_by(KpiSnapshot.stage, KpiSnapshot.day)
    )
    trends: dict[str, list[SnapshotDay]] = {}
    for stage, day, kpi, value, target, window_days in rows.all():
        series = trends.setdefault(stage, [])
        if not series or series[-1].day != day:
            series.append(SnapshotDay(day, {}, {}, window_days))
        series[-1].values[kpi] = value
        if target is not None:
            series[-1].targets[kpi] = target
    return trends
