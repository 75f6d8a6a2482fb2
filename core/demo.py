"""``cadence demo``: a fresh SQLite store with a living program, then the console.

Demo customers with a year of history; the default program went live a month ago and
that month is simulated (:mod:`core.simulate`): the scheduler's jobs at their times,
messages delivered, and the customers opening, clicking and buying, a little more when
a campaign reached them, so stage KPIs and campaign uplift have something to say. Then,
on the wall clock, the scheduler's first planning tick and the messages due now go out by
e-mail to a local SMTP sink that keeps them in a maildir. In a terminal, the console
opens last, with the scheduler running inside it and delivering to the sink.

Everything lands in one folder (``./cadence-demo`` by default): the settings,
a copy of the default program and templates for the newcomer to edit, and
the database.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from config import DEFAULT_CONFIG_DIR, DEFAULT_SETTINGS_FILE
from core import clock
from core.db import Store, open_store
from core.delivery import DeliveryStats
from core.demo_data import TIME_ZONES as DEMO_TIME_ZONES
from core.errors import CadenceError
from core.lifecycle import StageOverview, stage_overview
from core.measure.campaign_report import campaign_uplifts
from core.measure.kpis import Window
from core.measure.stages import StageKpis, stage_kpis
from core.measure.uplift import CampaignUplift
from core.planner.runs import plans_since
from core.planner.tick import RunPlan
from core.policy.quiet_hours import QuietHours
from core.program import load_program
from core.scheduler.jobs import REQUESTS_JOB
from core.scheduler.records import recent_job_runs
from core.scheduler.service import Scheduler
from core.segments import SegmentRefresh, refresh_segments
from core.settings import Settings
from core.simulate import SimulationSpec, run_simulation
from core.simulate.report import SimulationReport
from core.sink import SmtpSink
from core.summary import StoreSummary, summarise_store
from core.workers import run_delivery

MONTH_DAYS = 30
"""How long before "now" the demo's program went live: the simulated month."""

_AWAKE_MARGIN = timedelta(hours=1)
"""How long after the demo's moment its customers stay outside quiet hours, so the first
run's delivery and the console's first minutes happen while marketing may go."""


def simulation_start(now: datetime, month_days: int) -> datetime:
    """When the demo's simulated month starts. It ends a day before now: the latest slot of
    every daily cycle and the last day's journey steps are left to the live scheduler's
    first tick, which sends them to the sink, so the demo shows a real first run."""
    return now - timedelta(days=month_days + 1)


def daytime_moment(now: datetime, quiet: QuietHours | None) -> datetime:
    """The latest quarter hour up to ``now`` when, for the next hour, no demo customer is in
    quiet hours: the moment the demo runs as of, so its first run reaches people whatever
    the hour it is started at. ``now`` itself when it already is such a moment."""
    if quiet is None:
        return now
    zones = [ZoneInfo(name) for name in DEMO_TIME_ZONES]

    def awake(moment: datetime) -> bool:
        return all(
            quiet.release(at, zone) is None
            for at in (moment, moment + _AWAKE_MARGIN)
            for zone in zones
        )

    if awake(now):
        return now
    moment = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    for _ in range(4 * 48):
        if awake(moment):
            return moment
        moment -= timedelta(minutes=15)
    raise CadenceError(
        f"quiet hours {quiet.start:%H:%M}-{quiet.end:%H:%M} leave the demo's customers no "
        'hour to be reached; set [policy] quiet_hours to a shorter window or "off" in the '
        "demo's cadence.toml"
    )


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
    """What the demo shows: the store, stages and segments after the simulated month, the
    first planning tick on the wall clock, the month's stage KPIs and campaign uplift."""

    summary: StoreSummary
    stages: list[StageOverview]
    segments: list[SegmentRefresh]
    planned: list[RunPlan]
    jobs: dict[str, str]
    """The scheduler's jobs and their next fire times (ISO 8601)."""
    delivery: DemoDelivery
    simulated: SimulationReport
    window: Window
    kpis: list[StageKpis]
    uplifts: list[CampaignUplift]


@dataclass(frozen=True)
class DemoDelivery:
    """The first run's messages, sent to the demo's SMTP sink."""

    stats: DeliveryStats
    arrived: int
    """Messages the sink received."""
    maildir: Path


async def run_demo(
    settings: Settings,
    *,
    customers: int,
    days: int,
    seed: int,
    month_days: int = MONTH_DAYS,
    progress: Callable[[datetime], None] | None = None,
) -> DemoResult:
    """Create the schema, fill it with ``days`` days of demo history, simulate the last
    ``month_days`` of them with the program live, plan what is due now and deliver it
    into a local SMTP sink; what the demo shows, measured as of now. ``progress`` hears
    of every simulated moment reached."""
    program = load_program(settings.resolve(settings.program_dir))
    store = open_store(settings)
    now = clock.now()
    spec = SimulationSpec(
        customers=customers,
        days=month_days,
        seed=seed,
        start=simulation_start(now, month_days),
        history_days=max(days - month_days, 1),
    )
    try:
        simulated = await run_simulation(
            store, settings, spec, settings.config_dir / "simulated", progress
        )
        segments = await refresh_segments(store, program, now)
        jobs = await _first_scheduler_tick(store, settings)
        delivery = await _deliver_to_sink(store, settings)
        window = Window(now, settings.measure.kpi_window_days)
        async with store.reading() as session:
            planned = await plans_since(session, now)
            summary = await summarise_store(session, now)
            stages = await stage_overview(session, program, now)
            kpis = await stage_kpis(session, program, window)
            uplifts = await campaign_uplifts(
                session, now, settings.measure.min_sample_per_arm, program.params
            )
        return DemoResult(
            summary, stages, segments, planned, jobs, delivery, simulated, window, kpis, uplifts
        )
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
