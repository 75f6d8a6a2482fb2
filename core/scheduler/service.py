"""The leader's schedule on APScheduler 3: jobs rebuilt from the store, each run recorded.

The job store is APScheduler's in-memory one: the database stays the source
of truth, and the jobs are rebuilt from it at start and whenever the
program or the cycle campaigns change (a new program version, a pause, a
resume, a launch), which the request tick notices within two seconds.
APScheduler coalesces a job's missed fire times into one and never runs
two executions of a job at once; every execution is a ``job_runs`` row.

A job that fails because the database is away (see :mod:`core.db.outage`)
pauses the whole schedule, since every other job would fail the same way,
and runs again with a growing backoff until the database answers; then the
schedule resumes, and jobs whose time came meanwhile run once each
(coalesced), so a nightly job due during the outage is late, not skipped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import func, select

from core.db import Store
from core.db.outage import Outage, backoff, database_away, sleep_unless
from core.metrics import JOB_RUNS
from core.models import Campaign, ProgramVersion
from core.program import Program, load_program
from core.scheduler.jobs import REQUESTS_JOB, Job, JobCatalogue
from core.scheduler.records import (
    Counts,
    JobRecord,
    interrupt_orphaned_job_runs,
    record_job_run,
)
from core.settings import Settings

logger = logging.getLogger(__name__)

Fingerprint = tuple[Any, ...]


class Scheduler:
    """Runs the jobs of the store's program until :meth:`stop`; only the leader has one."""

    def __init__(self, store: Store, settings: Settings, node: str) -> None:
        self.store = store
        self.settings = settings
        self.node = node
        self._aps: AsyncIOScheduler | None = None
        self._fingerprint: Fingerprint | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._ticked = asyncio.Event()
        self._stopping = asyncio.Event()
        self._outage = Outage(logger, "the schedule")

    async def start(self) -> None:
        """Build the jobs from the store and start firing them."""
        self._aps = AsyncIOScheduler(
            timezone=self.settings.zone,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        await interrupt_orphaned_job_runs(self.store, self.node)
        await self._rebuild()
        self._aps.start()

    async def wait_for_tick(self) -> None:
        """Return once a request tick has ended (done, idle or failed) after this call."""
        self._ticked.clear()
        await self._ticked.wait()

    def next_fire_times(self) -> dict[str, str]:
        """Each job's next fire time (ISO 8601), for the heartbeat and the console."""
        if self._aps is None:
            return {}
        return {
            job.id: job.next_run_time.isoformat() if job.next_run_time else ""
            for job in self._aps.get_jobs()
        }

    async def stop(self) -> None:
        """Fire nothing more, let the executions under way finish, then shut down (which
        would cancel them)."""
        if self._aps is None:
            return
        self._stopping.set()  # a job waiting for the database is not run again
        self._aps.pause()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        self._aps.shutdown(wait=False)
        self._aps = None

    async def _rebuild(self) -> None:
        assert self._aps is not None
        self._fingerprint = await self._current_fingerprint()
        catalogue = JobCatalogue(self.store, self.settings, self._program())
        jobs = await catalogue.jobs()
        for existing in self._aps.get_jobs():
            if existing.id not in {job.name for job in jobs}:
                existing.remove()
        for job in jobs:
            self._aps.add_job(
                self._execute, job.trigger, args=[job], id=job.name, replace_existing=True
            )
        logger.info("scheduler jobs built", extra={"jobs": len(jobs)})

    def _program(self) -> Program:
        settings = self.settings
        return load_program(
            settings.resolve(settings.program_dir), settings.resolve(settings.templates_dir)
        )

    async def _execute(self, job: Job) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            record = await self._until_database_answers(job)
        except Exception as error:
            JOB_RUNS.labels(job=job.name, status="failed").inc()
            if database_away(error):  # the schedule stopped while it waited
                logger.warning(
                    "job not run again: the schedule stopped while the database was away",
                    extra={"job": job.name},
                )
            else:
                logger.exception("job failed", extra={"job": job.name})
        else:
            if record is not None:
                JOB_RUNS.labels(job=job.name, status=record.status).inc()
                logger.info(
                    "job finished",
                    extra={"job": job.name, "status": record.status, "counts": record.counts},
                )
        finally:
            self._running.discard(task)

    async def _until_database_answers(self, job: Job) -> JobRecord | None:
        """One execution of ``job``, run again while it fails because the database is
        away, with the schedule paused meanwhile; given up when the scheduler stops."""
        failures = 0
        while True:
            try:
                record = await record_job_run(self.store, job.name, self.node, self._work_of(job))
            except Exception as error:
                if not database_away(error) or self._stopping.is_set():
                    raise
                self._outage.lost(error)
                if self._aps is not None:
                    self._aps.pause()  # no-op once paused
                await sleep_unless(self._stopping, backoff(failures))
                failures += 1
                if self._stopping.is_set():
                    raise
                continue
            self._outage.back()
            if failures:
                # Once this execution has ended: resumed sooner, the job's next run would
                # be skipped as a second instance of it.
                task = asyncio.current_task()
                assert task is not None
                task.add_done_callback(lambda _: self._resume())
            return record

    def _resume(self) -> None:
        """Fire again after an outage: the jobs due meanwhile run now, once each."""
        if self._aps is not None and not self._stopping.is_set():
            self._aps.resume()

    def _work_of(self, job: Job) -> Any:
        if job.name != REQUESTS_JOB:
            return job.work

        async def tick() -> Counts | None:
            # The tick also notices a new program version or changed cycle campaigns.
            try:
                if await self._current_fingerprint() != self._fingerprint:
                    await self._rebuild()
                return await job.work()
            finally:
                self._ticked.set()

        return tick

    async def _current_fingerprint(self) -> Fingerprint:
        """What the jobs are built from: the latest program version and the cycle
        campaigns' names, statuses and schedules."""
        async with self.store.reading() as session:
            version = await session.scalar(select(func.max(ProgramVersion.id)))
            cycles = await session.execute(
                select(Campaign.name, Campaign.status, Campaign.digest, Campaign.schedule_from)
                .where(Campaign.kind == "cycle")
                .order_by(Campaign.name)
            )
            return (version, *(tuple(row) for row in cycles.all()))
