"""The leader's jobs: what each one does, and when it fires.

Fixed jobs: the request tick (launches, "run now", due runs: every
``scheduler.tick_seconds``), the stage and segment refresh, the nightly
intelligence refresh, the journeys' tick, the date triggers (birthdays and
anniversaries, in each customer's time zone), the daily KPI snapshot, the figures
the console reads (campaign uplifts, the week's message counts) and the clean-up.
Then one cron job per active cycle campaign, from the campaigns in the store. Every
planning job calls the same :func:`core.planner.runs.plan_due_runs`, which plans
everything due at once: cycles whose slots coincide are arbitrated by priority in
one tick whichever job fires first, and missed slots coalesce.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from core import clock
from core.db import Store
from core.figures import write_message_counts, write_uplifts
from core.intel.refresh import refresh_intel
from core.journeys import advance_journeys
from core.lifecycle import refresh_stages
from core.measure.snapshots import write_due_snapshots
from core.models import Campaign
from core.planner.runs import PlannedRun, plan_due_runs
from core.policy import Outcome
from core.program import Program
from core.program.schedules import schedule_trigger
from core.scheduler.records import Counts, forget_job_runs
from core.segments import refresh_segments
from core.settings import Settings
from core.triggers import fire_date_triggers

REQUESTS_JOB = "requests"
CYCLE_PREFIX = "cycle:"
_CLEANUP_SCHEDULE = "30 4 * * *"
_KPI_SNAPSHOT_SCHEDULE = "15 0 * * *"
"""Just after midnight in the program's time zone, when yesterday is complete."""
_UPLIFT_MINUTES = 15
"""How often campaign uplifts are measured for the console: they are judged over goal
windows of days, and measuring them all reads the goal events."""
UPLIFTS_JOB = "uplifts"
MESSAGE_COUNTS_JOB = "message-counts"
CONSOLE_FIGURE_JOBS = frozenset({UPLIFTS_JOB, MESSAGE_COUNTS_JOB})
"""Jobs that only store figures for the console to read: nothing the program does (plans,
sends, stages) depends on them."""
_MESSAGE_COUNT_SECONDS = 300
"""How often the week's messages are counted for the console's dashboard (which says when):
at a million customers a count reads a week of outbox rows for about 3 s, too much for the
leader to repeat, and record as a job run, every minute."""


@dataclass(frozen=True)
class Job:
    """One scheduled job: its name (the APScheduler job id), trigger and work."""

    name: str
    trigger: BaseTrigger
    work: Callable[[], Awaitable[Counts | None]]
    """Returns what it did, or None when it found nothing to do (then nothing is recorded)."""


class JobCatalogue:
    """The jobs of one program over one store."""

    def __init__(self, store: Store, settings: Settings, program: Program) -> None:
        self.store = store
        self.settings = settings
        self.program = program

    async def jobs(self) -> list[Job]:
        """The fixed jobs, then one per active cycle campaign with a schedule."""
        scheduler = self.settings.scheduler
        zone = self.settings.zone
        jobs = [
            Job(REQUESTS_JOB, IntervalTrigger(seconds=scheduler.tick_seconds), self.plan),
            Job(
                "refresh",
                IntervalTrigger(minutes=scheduler.refresh_minutes, timezone=zone),
                self.refresh,
            ),
            Job("intel", CronTrigger.from_crontab(scheduler.intel_schedule, zone), self.intel),
            Job("journeys", IntervalTrigger(seconds=scheduler.journeys_seconds), self.journeys),
            # Every quarter of an hour: zones at :30 and :45 offsets reach their send time too.
            Job("date-triggers", CronTrigger(minute="*/15", timezone=zone), self.date_triggers),
            Job(
                "kpi-snapshots",
                CronTrigger.from_crontab(_KPI_SNAPSHOT_SCHEDULE, zone),
                self.kpi_snapshots,
            ),
            Job(UPLIFTS_JOB, IntervalTrigger(minutes=_UPLIFT_MINUTES), self.uplifts),
            Job(
                MESSAGE_COUNTS_JOB,
                IntervalTrigger(seconds=_MESSAGE_COUNT_SECONDS),
                self.message_counts,
            ),
            Job("cleanup", CronTrigger.from_crontab(_CLEANUP_SCHEDULE, zone), self.cleanup),
        ]
        async with self.store.reading() as session:
            cycles = await session.execute(
                select(Campaign.name, Campaign.definition, Campaign.schedule_from)
                .where(Campaign.kind == "cycle", Campaign.status == "active")
                .order_by(Campaign.name)
            )
            for name, definition, schedule_from in cycles.all():
                schedule = definition.get("schedule")
                if schedule:
                    trigger = schedule_trigger(schedule, zone, schedule_from)
                    jobs.append(Job(f"{CYCLE_PREFIX}{name}", trigger, self.plan))
        return jobs

    async def plan(self) -> Counts | None:
        """Plan every run that is due (cycle slots, launches, "run now")."""
        return _planned_counts(
            await plan_due_runs(self.store, self.program, self.settings, clock.now())
        )

    async def date_triggers(self) -> Counts | None:
        """Birthdays and first-purchase anniversaries whose local send time has come in
        each time zone (a day already fired sends nothing new)."""
        return _planned_counts(
            await fire_date_triggers(self.store, self.program, self.settings, clock.now())
        )

    async def refresh(self) -> Counts:
        """Lifecycle stages, then every segment."""
        now = clock.now()
        async with self.store.transaction() as session:
            stages = await refresh_stages(session, self.program, now)
        segments = await refresh_segments(self.store, self.program, now)
        return {
            "customers": stages.customers,
            "moved": stages.moved,
            "segments": len(segments),
            "entered": sum(segment.entered for segment in segments),
            "left": sum(segment.left for segment in segments),
        }

    async def intel(self) -> Counts:
        """Scores, CLV, co-purchase recommendations, send hours and channel preferences
        (customers without a time zone of their own live on the program's clock)."""
        result = await refresh_intel(self.store, self.program, clock.now(), zone=self.settings.zone)
        return {
            "customers": result.customers,
            "recommendation_pairs": result.recommendations.pairs,
            "clv_fitted": int(result.fit is not None),
            "send_times": result.send_times.customers,
            "preferred_channels": result.channels.customers,
        }

    async def journeys(self) -> Counts | None:
        """Every journey one step further where its waits ended, its sends planned through
        the contact policy; nothing recorded when no customer moved."""
        tick = await advance_journeys(self.store, self.program, self.settings, clock.now())
        counts = tick.counts()
        return counts if any(value for key, value in counts.items() if key != "journeys") else None

    async def kpi_snapshots(self) -> Counts:
        """Yesterday's KPI snapshot, and any missing one of the days before it."""
        return await write_due_snapshots(self.store, self.program, self.settings, clock.now())

    async def uplifts(self) -> Counts:
        """Every campaign's uplift, stored for the console."""
        return await write_uplifts(self.store, self.program, self.settings, clock.now())

    async def message_counts(self) -> Counts:
        """The week's messages by day, channel and state, stored for the console."""
        return await write_message_counts(self.store, self.settings, clock.now())

    async def cleanup(self) -> Counts:
        """Old job runs go."""
        keep = timedelta(days=self.settings.scheduler.keep_job_runs_days)
        return {"job_runs_deleted": await forget_job_runs(self.store, clock.now() - keep)}


def _planned_counts(planned: Sequence[PlannedRun]) -> Counts | None:
    """What a planning job planned, summed over its runs; None when it planned nothing."""
    if not planned:
        return None
    plans = [run.plan for run in planned]
    return {
        "runs": len(plans),
        "targeted": sum(plan.targeted for plan in plans),
        "queued": sum(plan.count(Outcome.QUEUED) for plan in plans),
        "held": sum(plan.count(Outcome.HELD) for plan in plans),
        "control": sum(plan.count(Outcome.CONTROL) for plan in plans),
        "excluded": sum(plan.excluded for plan in plans),
    }
