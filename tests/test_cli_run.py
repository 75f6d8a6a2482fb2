"""``cadence run`` as an operator runs it: a real process on both databases, its HTTP API
(health, metrics), its heartbeat and job runs seen by ``cadence scheduler status``, JSON
logs, a graceful stop on SIGTERM, and on SQLite a second node refused with a clear line."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import distinct, func, select

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store
from core.demo_data import load_demo_data
from core.models import CampaignRun, CustomerStage, JobRun, OutboxMessage, SchedulerNode
from core.program import load_program
from core.program.apply import apply_program
from core.settings import Settings
from tests.channel_helpers import unused_port
from tests.conftest import NOW
from tests.helpers import CADENCE, cadence_environment, run_cadence
from tests.planner_world import Person, add_campaign, add_people, add_segment, campaign_spec

STARTUP_SECONDS = 30


def _settings_file(tmp_path: Path, settings: Settings, port: int, extra: str = "") -> Path:
    path = tmp_path / "cadence.toml"
    path.write_text(
        f"""
database_url = "{settings.database_url}"
program_dir = "{DEFAULT_CONFIG_DIR / "program"}"
templates_dir = "{DEFAULT_CONFIG_DIR / "templates"}"

[api]
port = {port}

[policy]
quiet_hours = "off"

[channels.file]
path = "{tmp_path / "outbox.jsonl"}"
{extra}""",
        encoding="utf-8",
    )
    return path


@asynccontextmanager
async def _node(config: Path, port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """A running ``cadence run``, once its API answers; killed if the test leaves it."""
    process = await asyncio.create_subprocess_exec(
        str(CADENCE),
        "--config",
        str(config),
        "run",
        env=cadence_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(STARTUP_SECONDS * 10):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.returncode is None, await process.stderr.read()  # type: ignore[union-attr]
                await asyncio.sleep(0.1)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_node_leads_serves_its_api_plans_due_cycles_and_stops_on_sigterm(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    people = await add_people(store, [Person(f"r{i}") for i in range(3)], NOW)
    await add_segment(store, "everyone", list(people.values()), NOW)
    # Due every minute since NOW: the node's first tick finds the latest slot due.
    minutely = campaign_spec("minutely", "everyone", channel="file", schedule="* * * * *")
    await add_campaign(store, minutely, NOW)
    port = unused_port()
    config = _settings_file(tmp_path, settings, port)
    started = time.time()  # the node plans on the wall clock

    async with _node(config, port) as process:

        async def status() -> str:
            result = await run_cadence(config, "scheduler", "status")
            assert result.returncode == 0, result.stderr
            return result.stdout

        for _ in range(100):
            shown = await status()
            # A tick's row reads "running" while it works; wait for one that finished.
            if "leader" in shown and re.search(
                r"requests\s+ok", shown.split("Recent job runs")[-1]
            ):
                break
            await asyncio.sleep(0.2)
        assert "cycle:minutely" in shown
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            metrics = (await client.get("/metrics")).text
        assert "cadence_scheduler_leader 1.0" in metrics
        assert 'cadence_job_runs_total{job="requests",status="ok"}' in metrics

        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=30)
        assert process.returncode == 0
        assert process.stderr is not None
        logs = [json.loads(line) for line in (await process.stderr.read()).splitlines()]
    messages = [line["message"] for line in logs]
    assert "leading the schedule" in messages and messages[-1] == "node stopped"
    async with store.reading() as session:
        statuses = (await session.scalars(select(CampaignRun.status))).all()
    # The latest slot at start, then one a minute while the test runs (a slow machine
    # crosses a minute or two): each planned once.
    minutes = int(time.time() // 60 - started // 60)
    assert 1 <= len(statuses) <= minutes + 1 and set(statuses) == {"planned"}
    async with store.reading() as session:
        assert (await session.scalars(select(SchedulerNode))).all() == []


async def test_the_default_program_keeps_running_on_its_own(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    await load_demo_data(store, settings, customers=300, days=120, seed=3)
    program_dir = DEFAULT_CONFIG_DIR / "program"
    program = load_program(program_dir, DEFAULT_CONFIG_DIR / "templates")
    await apply_program(store, program, clock.now())  # the node runs on the wall clock
    port = unused_port()
    # Refresh every 3 s and journeys every second: a few minutes of a node's life in seconds.
    faster = "[scheduler]\nrefresh_minutes = 0.05\njourneys_seconds = 1\n"
    config = _settings_file(tmp_path, settings, port, faster)
    wanted = ("refresh", "journeys")  # an idle request tick leaves no row

    async def queued_messages() -> int:
        async with store.reading() as session:
            return await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0

    async with _node(config, port) as process:
        for _ in range(150):
            status = await run_cadence(config, "scheduler", "status", "--runs", "60")
            assert status.returncode == 0, status.stderr
            shown = status.stdout
            finished = shown.split("Recent job runs")[-1]
            # The first journeys tick may finish before the first refresh has placed
            # anyone: wait for one after it, which queues the welcome series.
            if all(re.search(rf"{job}\s+ok", finished) for job in wanted) and (
                await queued_messages()
            ):
                break
            await asyncio.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=30)
    assert process.returncode == 0
    for job in wanted:
        assert re.search(rf"{job}\s+ok", finished), shown
    async with store.reading() as session:
        statuses = set((await session.scalars(select(JobRun.status))).all())
        stages = (await session.scalars(select(func.count(distinct(CustomerStage.stage))))).one()
        queued = await session.scalar(select(func.count()).select_from(OutboxMessage))
    assert statuses == {"ok"}
    assert stages >= 3  # the refresh placed the demo customers in their stages
    assert queued  # and the welcome series took the new ones in


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_second_node_on_one_sqlite_database_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    # On PostgreSQL a second node is welcome: test_scheduler covers who leads there.
    port = unused_port()
    config = _settings_file(tmp_path, settings, port)
    async with _node(config, port):
        second = await run_cadence(config, "run")
    assert second.returncode == 1
    assert "one node per SQLite database" in second.stderr
    assert "Traceback" not in second.stderr
