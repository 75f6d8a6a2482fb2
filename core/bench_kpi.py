"""``cadence bench kpi``: a day's KPI snapshot and the uplift of every campaign, against a floor.

Setup, not timed: the benchmark data (:mod:`core.bench_data`) with the
program's scores refreshed and its stages refreshed twice (three weeks
before ``BENCH_NOW`` and at it, so the stage history has moves inside the
KPI window), then ``campaigns`` stored campaigns, each with a goal (a
purchase within 7 days, every third one valued as revenue) and one planned
run in the four weeks before ``BENCH_NOW``: outbox rows for one customer in
twenty, one in ten of them kept back as control and the rest sent. It is
built once per size under ``.cadence-bench/`` and each run works on a fresh
copy; with ``database_url`` (a scratch PostgreSQL database, emptied) the
cached tables are copied into it.

Timed (``seconds``): :func:`core.measure.snapshots.write_kpi_snapshot` for the
last full day (``snapshot_seconds``) plus the uplift of every campaign as of
``BENCH_NOW`` as ``cadence report campaigns`` works it out (``uplift_seconds``).

The floor (``floor_seconds``), same run, same data: a plain ``count(*)`` of the
events inside the snapshot's KPI window plus a ``count(*)`` of the outbox rows
of both arms. ``ratio`` = ``seconds / floor_seconds``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, case, func, insert, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.bench_data import BENCH_NOW, derived_database, working_store
from core.bench_plan import rules_digest
from core.campaigns import store_campaign
from core.db import Store
from core.db import open_store as open_url
from core.db.copy import copy_tables
from core.db.types import UtcDateTime
from core.intel.refresh import refresh_intel
from core.lifecycle import refresh_stages
from core.measure.campaign_report import campaign_uplifts
from core.measure.goals import CONTROL, TREATED
from core.measure.kpis import Window
from core.measure.snapshots import day_end, write_kpi_snapshot
from core.migrations import upgrade
from core.models import CampaignRun, Customer, Event, OutboxMessage
from core.program import Program
from core.program.model import CampaignSpec
from core.settings import Settings

TARGET_SECONDS = 30.0
TARGET_RATIO = 5.0
CAMPAIGNS = 100
AUDIENCE_SHARE = 20
"""A run's outbox holds one customer in this many."""
CONTROL_SHARE = 10
"""One member of a run's audience in this many is kept back as control."""
_EARLIER_STAGES = BENCH_NOW - timedelta(days=21)
_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]


async def benchmark_kpi(
    settings: Settings, program: Program, *, customers: int, database_url: str | None
) -> dict[str, Any]:
    """Run the benchmark; returns the fields of its JSON line."""
    cached = await kpi_database(settings, program, customers)
    async with kpi_store(settings, cached, database_url) as store:
        day = BENCH_NOW.astimezone(settings.zone).date() - timedelta(days=1)
        with clock.using(clock.FixedClock(BENCH_NOW)):
            started = time.perf_counter()
            written = await write_kpi_snapshot(store, program, settings, day)
            snapshot_done = time.perf_counter()
            async with store.reading() as session:
                uplifts = await campaign_uplifts(
                    session, BENCH_NOW, settings.measure.min_sample_per_arm, program.params
                )
            uplift_seconds = time.perf_counter() - snapshot_done
        snapshot_seconds = snapshot_done - started
        window = Window(
            min(day_end(day, settings.zone), BENCH_NOW), settings.measure.kpi_window_days
        )
        async with store.reading() as session:
            floor_seconds = await _floor(session, window)
    seconds = snapshot_seconds + uplift_seconds
    ratio = seconds / floor_seconds
    return {
        "benchmark": "kpi",
        "database": store.backend,
        "customers": customers,
        "campaigns": len(uplifts),
        "seconds": round(seconds, 3),
        "snapshot_seconds": round(snapshot_seconds, 3),
        "uplift_seconds": round(uplift_seconds, 3),
        "floor_seconds": round(floor_seconds, 6),  # a few milliseconds on small data
        "ratio": round(ratio, 3),
        "snapshot_rows": written.rows,
        "sent": sum(uplift.measured.sent for uplift in uplifts),
        "kept_back": sum(uplift.measured.kept_back for uplift in uplifts),
        "verdicts": dict(sorted(Counter(str(u.estimate.verdict) for u in uplifts).items())),
        "target_seconds": TARGET_SECONDS,
        "target_ratio": TARGET_RATIO,
        "meets_target": seconds <= TARGET_SECONDS and ratio <= TARGET_RATIO,
    }


async def _floor(session: AsyncSession, window: Window) -> float:
    """Seconds to count the window's events and both arms' outbox rows (see the module doc)."""
    events = select(func.count()).where(
        Event.occurred_at > window.start, Event.occurred_at <= window.end
    )
    arms = select(func.count()).where(OutboxMessage.state.in_((TREATED, CONTROL)))
    started = time.perf_counter()
    await session.execute(events)
    await session.execute(arms)
    return time.perf_counter() - started


async def kpi_database(settings: Settings, program: Program, customers: int) -> Path:
    """The benchmark data with stages, campaigns, runs and both arms, built on first use;
    its name changes with the program's rules."""

    async def prepare(store: Store) -> None:
        await refresh_intel(store, program, BENCH_NOW, zone=settings.zone)
        for moment in (_EARLIER_STAGES, BENCH_NOW):
            async with store.transaction() as session:
                await refresh_stages(session, program, moment)
        await _campaign_runs(store, program)

    name = f"kpi-{customers}-{rules_digest(program)}.db"
    return await derived_database(settings, customers, name, prepare)


async def _campaign_runs(store: Store, program: Program) -> None:
    """:data:`CAMPAIGNS` campaigns with a goal, and one planned run each with both arms,
    its outbox rows inserted from the customers table in one statement."""
    segments = [segment.spec.name for segment in program.segments]
    customer = Customer.__table__.c
    for number in range(CAMPAIGNS):
        planned_at = BENCH_NOW.replace(hour=10, minute=0) - timedelta(days=1 + number % 28)
        sent_at = planned_at + timedelta(minutes=5)
        spec = CampaignSpec.model_validate(
            {
                "name": f"bench-kpi-{number:03d}",
                "kind": "ad_hoc",
                "target": {"segment": segments[number % len(segments)]},
                "channel": "email",
                "variants": ["offer_a"],
                "control": 100 / CONTROL_SHARE,
                "goal": {"event": "purchase", "within": "7d"}
                | ({"value": "revenue"} if number % 3 == 0 else {}),
            }
        )
        share = number % AUDIENCE_SHARE
        # Members: id ≡ share (mod 20); one residue in ten of those (mod 200) is control.
        control = customer.id % (AUDIENCE_SHARE * CONTROL_SHARE) == (
            share + AUDIENCE_SHARE * (number % CONTROL_SHARE)
        )
        async with store.transaction() as session:
            campaign = store_campaign(session, spec, origin="launch", now=planned_at)
            await session.flush()
            run = CampaignRun(
                campaign_id=campaign.id,
                run_key=f"bench-{number}",
                occasion="launch",
                status="planned",
                due_at=planned_at,
                planned_at=planned_at,
                outcomes={},
            )
            session.add(run)
            await session.flush()
            rows = select(
                literal(run.id),
                literal(campaign.id),
                customer.id,
                literal("email"),
                literal("marketing"),
                literal("offer_a"),
                case((control, literal(CONTROL)), else_=literal(TREATED)),
                literal(planned_at, UtcDateTime()),
                literal(planned_at, UtcDateTime()),
                case((control, None), else_=literal(sent_at, UtcDateTime())),
            ).where(customer.id % AUDIENCE_SHARE == share)
            columns = ["run_id", "campaign_id", "customer_id", "channel", "category"]
            columns += ["variant", "state", "due_at", "created_at", "sent_at"]
            await session.execute(insert(_OUTBOX).from_select(columns, rows))


@asynccontextmanager
async def kpi_store(
    settings: Settings, cached: Path, database_url: str | None
) -> AsyncIterator[Store]:
    """A fresh copy of ``cached``: a SQLite file, or the PostgreSQL database given, emptied
    and filled with the cached tables."""
    if database_url is None:
        async with working_store(settings, cached) as store:
            yield store
        return
    store = open_url(Settings(database_url=database_url))
    try:
        async with store.transaction() as session:
            await session.execute(text("DROP SCHEMA public CASCADE"))
            await session.execute(text("CREATE SCHEMA public"))
        await upgrade(store)
        async with working_store(settings, cached) as source:
            await copy_tables(source, store)
        yield store
    finally:
        await store.close()
