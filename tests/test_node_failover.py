"""Three real ``cadence run`` nodes on one PostgreSQL database: SIGKILL the leader while it
plans a cycle run; the run completes once, no customer gets two messages from it, and
another node leads within 15 seconds."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import Store
from core.models import CampaignRun, JobRun, OutboxMessage, SchedulerNode
from core.settings import Settings
from tests.channel_helpers import unused_port
from tests.conftest import NOW
from tests.helpers import CADENCE, cadence_environment
from tests.planner_world import Person, add_campaign, add_people, add_segment, campaign_spec
from tests.test_cli_run import _settings_file

NODES = 3
CUSTOMERS = 20_000
TAKE_OVER_SECONDS = 15


@asynccontextmanager
async def _nodes(
    tmp_path: Path, settings: Settings
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    processes = []
    for number in range(NODES):
        folder = tmp_path / f"node{number}"
        folder.mkdir()
        config = _settings_file(folder, settings, unused_port())
        processes.append(
            await asyncio.create_subprocess_exec(
                str(CADENCE),
                "--config",
                str(config),
                "run",
                env=cadence_environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()


def _pid_of(node: str) -> int:
    """The process id in a node's name (``host:pid:random``)."""
    return int(node.split(":")[-2])


async def _poll(read: object, seconds: float, interval: float = 0.02) -> object:
    """Call the async ``read`` until it returns something truthy; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = await read()  # type: ignore[operator]
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"nothing within {seconds} s")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_leader_killed_mid_run_the_cycle_runs_once_and_a_new_leader_appears(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    people = await add_people(store, [Person(f"f{i}") for i in range(CUSTOMERS)], NOW)
    await add_segment(store, "everyone", list(people.values()), NOW)
    # Daily, due since NOW: the leader's first tick plans its latest slot, and no other slot
    # comes due while the test runs (a minutely one did, on a slow machine).
    daily = campaign_spec("daily", "everyone", channel="file", schedule="0 0 * * *")
    await add_campaign(store, daily, NOW)

    async with _nodes(tmp_path, settings) as processes:

        async def planning() -> JobRun | None:
            async with store.reading() as session:
                return await session.scalar(select(JobRun).where(JobRun.status == "running"))

        running = await _poll(planning, 60)
        assert isinstance(running, JobRun)
        leader = next(p for p in processes if p.pid == _pid_of(running.node))
        leader.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await leader.wait()

        async def new_leader() -> str | None:
            async with store.reading() as session:
                return await session.scalar(
                    select(SchedulerNode.node).where(
                        SchedulerNode.role == "leader", SchedulerNode.node != running.node
                    )
                )

        await _poll(new_leader, TAKE_OVER_SECONDS + 5, interval=0.1)
        took_over = time.monotonic() - killed_at
        assert took_over <= TAKE_OVER_SECONDS

        async def planned() -> bool:
            async with store.reading() as session:
                statuses = (await session.scalars(select(CampaignRun.status))).all()
            return list(statuses) == ["planned"]

        await _poll(planned, 60, interval=0.1)

    async with store.reading() as session:
        # The killed leader was in the middle of it; its successor marked it so.
        interrupted = await session.get_one(JobRun, running.id)
        rows = await session.scalar(select(func.count()).select_from(OutboxMessage))
        customers = await session.scalar(
            select(func.count(func.distinct(OutboxMessage.customer_id)))
        )
        runs = await session.scalar(select(func.count()).select_from(CampaignRun))
    assert interrupted.status == "interrupted"
    assert runs == 1
    assert rows == customers == CUSTOMERS
