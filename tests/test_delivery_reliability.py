"""Delivery survives a SIGKILL: a real ``cadence deliver`` process, killed half-way
through 10,000 messages and started again, reaches every customer, repeating at most one
message per SMTP connection in flight at the kill (recognised by Message-ID)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from config import DEFAULT_CONFIG_DIR
from core.db import Store
from core.message_ids import message_id_domain, message_id_for
from core.models import OutboxMessage
from core.settings import Settings
from core.sink import SmtpSink
from tests.conftest import NOW
from tests.outbox_world import queue_messages
from tests.planner_world import Person, add_campaign, add_people, campaign_spec

MESSAGES = 10_000
CONNECTIONS = 8
LEASE_SECONDS = 2


def _settings_file(tmp_path: Path, settings: Settings, sink: SmtpSink) -> Path:
    path = tmp_path / "cadence.toml"
    path.write_text(
        f"""
database_url = "{settings.database_url}"
templates_dir = "{DEFAULT_CONFIG_DIR / "templates"}"

[smtp]
host = "{sink.host}"
port = {sink.port}

[channels.email]
connections = {CONNECTIONS}

[delivery]
lease_seconds = {LEASE_SECONDS}
""",
        encoding="utf-8",
    )
    return path


async def _deliver(config: Path, *options: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from core.cli import main; main()",
        "--config",
        str(config),
        "deliver",
        "--no-api",
        "--channel",
        "email",
        *options,
        stdout=asyncio.subprocess.DEVNULL,
    )


async def _in_state(store: Store, state: str) -> int:
    async with store.reading() as session:
        count = await session.scalar(select(func.count()).where(OutboxMessage.state == state))
    return count or 0


async def test_a_killed_worker_resumes_and_repeats_at_most_one_message_per_connection(
    store: Store, settings: Settings, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    people = [Person(f"k{number}") for number in range(MESSAGES)]
    ids = await add_people(store, people, NOW)
    campaign = await add_campaign(store, campaign_spec("offer", "everyone"), NOW)
    queued = await queue_messages(store, campaign, sorted(ids.values()), NOW)

    async with SmtpSink() as sink:
        config = _settings_file(tmp_path, settings, sink)
        first = await _deliver(config)
        for _ in range(1200):
            if sink.stats().received >= MESSAGES // 2 or first.returncode is not None:
                break
            await asyncio.sleep(0.05)
        first.kill()  # SIGKILL: no chance to record or give anything back
        await first.wait()
        in_flight = await _in_state(store, "sending")
        received_at_kill = sink.stats().received
        assert MESSAGES // 2 <= received_at_kill < MESSAGES

        await asyncio.sleep(LEASE_SECONDS + 0.5)  # the dead worker's leases run out
        second = await _deliver(config, "--until-idle")
        assert await asyncio.wait_for(second.wait(), timeout=180) == 0
        stats = sink.stats()

    record_property("received_at_kill", received_at_kill)
    record_property("leased_at_kill", in_flight)
    record_property("duplicates", stats.duplicates)
    domain = message_id_domain(settings.channels.email)
    assert set(sink.message_ids) == {message_id_for(row, domain) for row in queued}
    assert stats.duplicates <= CONNECTIONS
    assert await _in_state(store, "sent") == MESSAGES
