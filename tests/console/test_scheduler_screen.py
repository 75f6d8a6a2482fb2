"""The scheduler screen on SQLite and PostgreSQL: nodes and heartbeats, the leader's jobs by
next fire time, running and recent job runs (a failed run's error on selection) and the
live log tail; in 80x24."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from textual.widgets import DataTable, Log, Static

from console.screens.scheduler import SchedulerScreen
from core import clock
from core.db import Store
from core.models import JobRun
from core.scheduler.records import record_job_run, write_heartbeat
from core.settings import Settings
from tests.conftest import NOW
from tests.console.world import column, console_app, default_program, settle, show

pytestmark = pytest.mark.usefixtures("frozen_clock")


async def _record_runs(store: Store) -> None:
    """An ok refresh, then a failed intel run, then a journeys run still under way."""

    async def refreshed() -> dict[str, int]:
        return {"moved": 12}

    async def broken() -> dict[str, int]:
        raise RuntimeError("the CLV fit did not converge")

    with clock.using(clock.FixedClock(NOW - timedelta(minutes=30))):
        await record_job_run(store, "refresh", "node-a", refreshed)
    with clock.using(clock.FixedClock(NOW - timedelta(minutes=20))), pytest.raises(RuntimeError):
        await record_job_run(store, "intel", "node-a", broken)
    async with store.transaction() as session:
        session.add(
            JobRun(
                job="journeys",
                node="node-a",
                started_at=NOW - timedelta(minutes=5),
                status="running",
                counts={},
            )
        )


async def test_without_a_leader_the_screen_says_so(store: Store, settings: Settings) -> None:
    app = console_app(store, settings, default_program())
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot, "s")
        screen = app.screen
        assert isinstance(screen, SchedulerScreen)
        nodes = str(screen.query_one("#nodes", Static).render())
        assert "no leader" in nodes and "cadence run" in nodes
        assert column(screen.query_one("#jobs", DataTable), 1) == ["no jobs: no leader"]
        assert column(screen.query_one("#running", DataTable), 1) == ["nothing running"]
        detail = str(screen.query_one("#run-detail", Static).render())
        assert "no job runs recorded yet" in detail


async def test_nodes_jobs_runs_and_the_log_tail(store: Store, settings: Settings) -> None:
    await write_heartbeat(
        store,
        "node-a",
        "leader",
        NOW - timedelta(hours=2),
        {
            "segments": (NOW + timedelta(minutes=10)).isoformat(),
            "requests": (NOW + timedelta(seconds=2)).isoformat(),
            "cycle:paused-one": "",
        },
    )
    with clock.using(clock.FixedClock(NOW - timedelta(minutes=2))):
        await write_heartbeat(store, "node-b", "follower", NOW - timedelta(hours=1), {})
    await _record_runs(store)
    app = console_app(store, settings, default_program())
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot, "s")
        screen = app.screen
        assert isinstance(screen, SchedulerScreen)
        nodes = str(screen.query_one("#nodes", Static).render())
        assert nodes.index("node-a") < nodes.index("node-b")
        assert "leader" in nodes and "heartbeat 0.0s ago" in nodes
        assert "heartbeat 2m ago" in nodes, "a stale follower shows its age"

        jobs = screen.query_one("#jobs", DataTable)
        assert column(jobs, 0) == ["requests", "segments", "cycle:paused-one"]
        assert column(jobs, 2) == ["2.0s", "10m", "paused"]

        running = screen.query_one("#running", DataTable)
        assert column(running, 0) == ["journeys"]
        assert column(running, 3) == ["5m"]

        runs = screen.query_one("#runs", DataTable)
        assert column(runs, 1) == ["journeys", "intel", "refresh"]
        assert column(runs, 2) == ["running", "failed", "ok"]
        assert column(runs, 4)[2] == "moved 12"

        runs.focus()
        await pilot.press("down")
        await pilot.pause()
        detail = str(screen.query_one("#run-detail", Static).render())
        assert "intel on node-a: failed" in detail
        assert "the CLV fit did not converge" in detail

        app.log_tail.handle(
            logging.makeLogRecord(
                {"msg": "a tick planned 3 runs", "levelno": logging.INFO, "levelname": "INFO"}
            )
        )
        await pilot.press("r")
        await settle(app, pilot)
        log = screen.query_one("#log", Log)
        assert any("a tick planned 3 runs" in line for line in log.lines)
        assert runs.cursor_row == 1, "a reload keeps the cursor on the selected run"
        await pilot.press("r")
        await settle(app, pilot)
        assert sum("a tick planned 3 runs" in line for line in log.lines) == 1
