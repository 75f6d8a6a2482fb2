"""``--embedded``: the scheduler inside the console when no node leads, and not when one
does; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from config import DEFAULT_CONFIG_DIR
from console.app import CadenceConsole
from console.context import ConsoleContext
from core import clock
from core.db import Store
from core.scheduler.records import scheduler_nodes, write_heartbeat
from core.settings import Settings
from tests.channel_helpers import unused_port
from tests.console.world import living_store


async def _nodes(store: Store) -> list[str]:
    async with store.reading() as session:
        return [f"{node.role}:{node.node}" for node in await scheduler_nodes(session, clock.now())]


def _embedded_app(store: Store, settings: Settings, program: object) -> CadenceConsole:
    settings.program_dir = DEFAULT_CONFIG_DIR / "program"
    settings.templates_dir = DEFAULT_CONFIG_DIR / "templates"
    settings.api.port = unused_port()
    settings.scheduler.heartbeat_seconds = 0.2
    settings.scheduler.leader_check_seconds = 0.2
    context = ConsoleContext(store, settings, program, actor="ops")  # type: ignore[arg-type]
    return CadenceConsole(context, embedded=True)


async def test_the_embedded_scheduler_leads_while_the_console_runs(
    store: Store, settings: Settings
) -> None:
    program = await living_store(store, settings)
    app = _embedded_app(store, settings, program)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(150):
            if any(node.startswith("leader:") for node in await _nodes(store)):
                break
            await asyncio.sleep(0.1)
        assert [node.split(":")[0] for node in await _nodes(store)] == ["leader"]
        await pilot.press("r")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        health = str(app.screen.query_one("#health").render())
        assert "leader" in health and "no leader" not in health
    assert await _nodes(store) == []  # quitting stopped the node, which removed its heartbeat


async def test_no_embedded_scheduler_when_another_node_leads(
    store: Store, settings: Settings
) -> None:
    program = await living_store(store, settings)
    started = clock.now() - timedelta(minutes=5)
    await write_heartbeat(store, "elsewhere:1", "leader", started, {})
    app = _embedded_app(store, settings, program)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await asyncio.sleep(1.0)  # several heartbeats' time, had it started a node
        assert await _nodes(store) == ["leader:elsewhere:1"]
