"""The scheduler on both databases: jobs built from the store, requests picked up within two
seconds, every execution recorded, heartbeats, leadership, and missed cycle slots."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store, open_store
from core.measure.snapshots import CATCH_UP_DAYS
from core.models import Campaign, CampaignRun, JobRun, KpiSnapshot
from core.planner.runs import plan_due_runs, request_run
from core.program import load_program
from core.scheduler.jobs import CYCLE_PREFIX, REQUESTS_JOB, JobCatalogue
from core.scheduler.leader import Leadership, NodeAlreadyRunning
from core.scheduler.records import (
    forget_job_runs,
    recent_job_runs,
    record_job_run,
    remove_node,
    running_job_runs,
    scheduler_nodes,
    write_heartbeat,
)
from core.scheduler.service import Scheduler
from core.settings import Settings
from tests.conftest import NOW
from tests.planner_world import Person, add_campaign, add_people, add_segment, campaign_spec

PROGRAM = DEFAULT_CONFIG_DIR / "program"


@pytest.fixture
def program_settings(settings: Settings) -> Settings:
    settings.program_dir = PROGRAM
    settings.templates_dir = DEFAULT_CONFIG_DIR / "templates"
    settings.policy.quiet_hours = None
    return settings


async def _wait_for(condition: object, seconds: float) -> float:
    """Poll the async ``condition`` until true; the seconds it took (fails after ``seconds``)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if await condition():  # type: ignore[operator]
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {seconds} s")


async def test_jobs_are_the_fixed_ones_and_one_per_active_cycle_campaign(
    store: Store, program_settings: Settings
) -> None:
    await add_campaign(store, campaign_spec("weekly", "all", schedule="0 10 * * MON"), NOW)
    await add_campaign(store, campaign_spec("paused", "all", status="paused"), NOW)
    await add_campaign(store, campaign_spec("by-hand", "all", kind="ad_hoc"), NOW)

    jobs = await JobCatalogue(store, program_settings, load_program(PROGRAM)).jobs()

    names = [job.name for job in jobs]
    fixed = [REQUESTS_JOB, "refresh", "intel", "journeys", "date-triggers", "kpi-snapshots"]
    fixed += ["uplifts", "message-counts", "cleanup"]
    assert names == [*fixed, f"{CYCLE_PREFIX}weekly"]
    cycle = jobs[-1].trigger.get_next_fire_time(None, NOW)
    assert cycle is not None and cycle.weekday() == 0 and cycle.hour == 10


async def test_a_requested_run_is_planned_within_two_seconds_and_recorded(
    store: Store, program_settings: Settings
) -> None:
    people = await add_people(store, [Person(f"c{i}") for i in range(5)], NOW)
    await add_segment(store, "all", list(people.values()), NOW)
    campaign_id = await add_campaign(store, campaign_spec("now", "all", kind="ad_hoc"), NOW)
    scheduler = Scheduler(store, program_settings, "node-a")
    await scheduler.start()
    try:
        async with store.transaction() as session:
            campaign = await session.get_one(Campaign, campaign_id)
            await request_run(session, campaign, "manual:1", "manual", clock.now())

        async def planned() -> bool:
            async with store.reading() as session:
                status = await session.scalar(select(CampaignRun.status))
            return status == "planned"

        assert await _wait_for(planned, 2.5) <= 2.0
        assert REQUESTS_JOB in scheduler.next_fire_times()
    finally:
        await scheduler.stop()
    async with store.reading() as session:
        [record] = await recent_job_runs(session)
    assert (record.job, record.node, record.status) == (REQUESTS_JOB, "node-a", "ok")
    assert record.counts["runs"] == 1 and record.counts["queued"] == 5


async def test_pausing_a_cycle_campaign_removes_its_job_within_two_seconds(
    store: Store, program_settings: Settings
) -> None:
    await add_campaign(store, campaign_spec("weekly", "all"), NOW)
    scheduler = Scheduler(store, program_settings, "node-a")
    await scheduler.start()
    try:
        assert f"{CYCLE_PREFIX}weekly" in scheduler.next_fire_times()
        async with store.transaction() as session:
            await session.execute(update(Campaign).values(status="paused"))

        async def removed() -> bool:
            return f"{CYCLE_PREFIX}weekly" not in scheduler.next_fire_times()

        assert await _wait_for(removed, 2.5) <= 2.0
    finally:
        await scheduler.stop()


async def test_the_nightly_kpi_job_writes_yesterday_and_fills_missing_days(
    store: Store, program_settings: Settings
) -> None:
    ids = await add_people(store, [Person("ann"), Person("ben")], NOW - timedelta(days=40))
    await add_segment(store, "all", list(ids.values()), NOW)
    catalogue = JobCatalogue(store, program_settings, load_program(PROGRAM))
    with clock.using(clock.FixedClock(NOW - timedelta(days=3))):
        await catalogue.refresh()  # placed in their stages before yesterday
    with clock.using(clock.FixedClock(NOW)):
        first = await catalogue.kpi_snapshots()
        again = await catalogue.kpi_snapshots()
    async with store.reading() as session:
        days = (await session.scalars(select(KpiSnapshot.day).distinct())).all()
    yesterday = NOW.astimezone(program_settings.zone).date() - timedelta(days=1)
    assert first["days"] == CATCH_UP_DAYS + 1 and max(days) == yesterday
    assert len(days) == CATCH_UP_DAYS + 1 and first["customers"] == 2
    assert again["days"] == 1 and again["rows"] == first["rows"] // first["days"]


async def test_a_failing_job_is_recorded_with_its_error_and_idle_ones_leave_no_row(
    store: Store,
) -> None:
    async def broken() -> None:
        raise RuntimeError("the segment table is gone")

    async def idle() -> None:
        return None

    with pytest.raises(RuntimeError):
        await record_job_run(store, "refresh", "node-a", broken)
    assert await record_job_run(store, REQUESTS_JOB, "node-a", idle) is None

    async with store.reading() as session:
        [record] = await recent_job_runs(session)
        rows = (await session.scalars(select(JobRun))).all()
    assert len(rows) == 1
    assert record.status == "failed" and record.finished_at is not None
    assert record.error is not None
    assert record.error.startswith("RuntimeError: the segment table is gone")
    assert await forget_job_runs(store, clock.now() + timedelta(seconds=1)) == 1


async def test_heartbeats_show_each_node_with_the_leader_first(store: Store) -> None:
    await write_heartbeat(store, "node-b", "follower", NOW, {})
    await write_heartbeat(store, "node-a", "leader", NOW, {"refresh": "2026-12-01T10:00:00"})
    await write_heartbeat(store, "node-b", "follower", NOW, {})

    async with store.reading() as session:
        nodes = await scheduler_nodes(session, clock.now())
    assert [(node.node, node.role) for node in nodes] == [
        ("node-a", "leader"),
        ("node-b", "follower"),
    ]
    assert nodes[0].jobs == {"refresh": "2026-12-01T10:00:00"}
    assert nodes[0].heartbeat_age < timedelta(seconds=60)
    await remove_node(store, "node-b")
    async with store.reading() as session:
        assert [node.node for node in await scheduler_nodes(session, clock.now())] == ["node-a"]


async def test_one_leader_at_a_time_and_the_next_one_takes_over(settings: Settings) -> None:
    stores = [open_store(settings) for _ in range(2)]
    first, second = (Leadership(store) for store in stores)
    try:
        assert await first.try_acquire()
        if settings.database_url.startswith("sqlite"):
            with pytest.raises(NodeAlreadyRunning, match="one node per SQLite database"):
                await second.try_acquire()
        else:
            assert not await second.try_acquire()
            assert await first.still_leader()
        await first.release()
        assert await second.try_acquire()
    finally:
        await first.release()
        await second.release()
        for store in stores:
            await store.close()


@pytest.mark.parametrize(("policy", "runs"), [("run_once", 1), ("skip", 0)])
async def test_after_downtime_a_cycle_runs_once_or_not_at_all(
    store: Store, program_settings: Settings, policy: str, runs: int
) -> None:
    people = await add_people(store, [Person("c1")], NOW)
    await add_segment(store, "all", list(people.values()), NOW)
    # Daily at 10:00 from NOW; the node comes back three days and two hours later.
    await add_campaign(store, campaign_spec("daily", "all"), NOW.replace(hour=9))
    program_settings.scheduler.missed_cycles = policy  # type: ignore[assignment]
    back = NOW.replace(hour=12) + timedelta(days=3)

    planned = await plan_due_runs(store, load_program(PROGRAM), program_settings, back)

    assert len(planned) == runs
    async with store.reading() as session:
        keys = (await session.scalars(select(CampaignRun.run_key))).all()
    assert len(keys) == runs
    if runs:
        assert keys[0].startswith(f"schedule:{back.date().isoformat()}T10:00")


async def test_a_new_leader_marks_what_a_dead_one_left_running(
    store: Store, program_settings: Settings
) -> None:
    async with store.transaction() as session:
        session.add(JobRun(job="refresh", node="dead", started_at=NOW, status="running", counts={}))
    scheduler = Scheduler(store, program_settings, "node-b")
    await scheduler.start()
    await scheduler.stop()
    async with store.reading() as session:
        [record] = await recent_job_runs(session, job="refresh")
    assert record.status == "interrupted" and record.finished_at is not None


async def test_running_job_runs_are_those_under_way_longest_running_first(store: Store) -> None:
    async with store.transaction() as session:
        for job, started, status in (
            ("refresh", NOW - timedelta(minutes=5), "running"),
            ("requests", NOW - timedelta(minutes=9), "ok"),
            ("intel", NOW - timedelta(minutes=20), "running"),
            ("journeys", NOW - timedelta(minutes=1), "failed"),
        ):
            session.add(
                JobRun(job=job, node="node-a", started_at=started, status=status, counts={})
            )
    async with store.reading() as session:
        running = await running_job_runs(session)
    assert [record.job for record in running] == ["intel", "refresh"]
    assert all(record.finished_at is None for record in running)
