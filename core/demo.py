"""``cadence demo``: a fresh SQLite store with demo data, scored, staged, segmented,
planned and delivered: the program went live a week ago, so the first planning tick runs
every cycle campaign's latest slot, through the contact policy, and the messages due now
go out by e-mail to a local SMTP sink that keeps them in a maildir.

Everything lands in one folder (``./cadence-demo`` by default): the settings,
a copy of the default program and templates for the newcomer to edit, and
the database.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from config import DEFAULT_CONFIG_DIR, DEFAULT_SETTINGS_FILE
from core import clock
from core.db import Store, open_store
from core.delivery import DeliveryStats
from core.demo_data import load_demo_data
from core.errors import CadenceError
from core.intel.refresh import refresh_intel
from core.lifecycle import StageOverview, refresh_stages, stage_overview
from core.migrations import upgrade
from core.planner.runs import plans_since
from core.planner.tick import RunPlan
from core.program import load_program
from core.program.apply import apply_program
from core.scheduler.jobs import REQUESTS_JOB
from core.scheduler.records import recent_job_runs
from core.scheduler.service import Scheduler
from core.segments import SegmentRefresh, refresh_segments
from core.settings import Settings
from core.sink import SmtpSink
from core.summary import StoreSummary, summarise_store
from core.workers import run_delivery

_LIVE_FOR = timedelta(days=7)
"""How long before "now" the demo's program went live: every weekly slot has come round."""


def prepare_demo_directory(directory: Path) -> Path:
    """Make ``directory`` hold a settings file, the default program and templates, and no
    database; returns the settings file. Files already there (edited by the user) stay."""
    directory.mkdir(parents=True, exist_ok=True)
    for folder in ("program", "templates"):
        shutil.copytree(DEFAULT_CONFIG_DIR / folder, directory / folder, dirs_exist_ok=True)
    database = (directory / "cadence.db").resolve()
    for leftover in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    settings_file = directory / "cadence.toml"
    if not settings_file.exists():
        text = DEFAULT_SETTINGS_FILE.read_text(encoding="utf-8").replace(
            'database_url = "sqlite+aiosqlite:///cadence.db"',
            f'database_url = "sqlite+aiosqlite:///{database}"',
        )
        settings_file.write_text(text, encoding="utf-8")
    return settings_file


@dataclass(frozen=True)
class DemoResult:
    """What the demo shows: the store, the stages and the segments after a first refresh,
    and the first planning tick of the campaigns."""

    summary: StoreSummary
    stages: list[StageOverview]
    segments: list[SegmentRefresh]
    planned: list[RunPlan]
    jobs: dict[str, str]
    """The scheduler's jobs and their next fire times (ISO 8601)."""
    delivery: DemoDelivery


@dataclass(frozen=True)
class DemoDelivery:
    """The first run's messages, sent to the demo's SMTP sink."""

    stats: DeliveryStats
    arrived: int
    """Messages the sink received."""
    maildir: Path


async def run_demo(settings: Settings, *, customers: int, days: int, seed: int) -> DemoResult:
    """Create the schema, fill it with demo data, refresh scores, stages and segments, apply
    the program as of a week ago, plan the campaign runs due since and deliver what is due
    now into a local SMTP sink."""
    program = load_program(settings.resolve(settings.program_dir))
    store = open_store(settings)
    try:
        await upgrade(store)
        await load_demo_data(store, settings, customers=customers, days=days, seed=seed)
        now = clock.now()
        await refresh_intel(store, program, now, zone=settings.zone)
        async with store.transaction() as session:
            await refresh_stages(session, program, now)
        segments = await refresh_segments(store, program, now)
        await apply_program(store, program, now - _LIVE_FOR)
        jobs = await _first_scheduler_tick(store, settings)
        delivery = await _deliver_to_sink(store, settings)
        async with store.reading() as session:
            planned = await plans_since(session, now)
            summary = await summarise_store(session, now)
            stages = await stage_overview(session, program, now)
        return DemoResult(summary, stages, segments, planned, jobs, delivery)
    finally:
        await store.close()


async def _first_scheduler_tick(store: Store, settings: Settings) -> dict[str, str]:
    """The scheduler, started as ``cadence run`` starts it, until its first request tick
    has planned what is due; its jobs with their next fire times."""
    scheduler = Scheduler(store, settings, "demo")
    await scheduler.start()
    try:
        await scheduler.wait_for_tick()
        jobs = scheduler.next_fire_times()
    finally:
        await scheduler.stop()
    async with store.reading() as session:
        failed = await recent_job_runs(session, limit=1, job=REQUESTS_JOB, failed_only=True)
    if failed:
        raise CadenceError(f"the scheduler's first planning tick failed: {failed[0].error}")
    return jobs


async def _deliver_to_sink(store: Store, settings: Settings) -> DemoDelivery:
    """Send the e-mail due now through a sink on a free local port, as a real server."""
    maildir = settings.config_dir / "sink"
    async with SmtpSink(maildir=maildir) as sink:
        smtp = settings.smtp.model_copy(update={"host": sink.host, "port": sink.port})
        stats = await run_delivery(
            store,
            settings.model_copy(update={"smtp": smtp}),
            channels=["email"],
            until_idle=True,
            serve_http=False,
        )
    return DemoDelivery(stats, sink.stats().received, maildir)
