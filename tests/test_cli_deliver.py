"""``cadence deliver`` run as a user runs it: the installed console script in a subprocess,
against a migrated store with queued messages and a real SMTP server (the sink) in the test.

It sends the queue and says what it did; with ``--processes 2`` two processes share the
queue, and with another ``cadence deliver`` beside them three, and still send each message
exactly once (on both databases); a channel it cannot serve and a store at an old schema
stop it with one clear line.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import Store, create_engine
from core.message_ids import message_id_domain, message_id_for
from core.migrations import head_revision, upgrade
from core.models import OutboxMessage
from core.settings import Settings
from core.sink import SmtpSink
from tests.conftest import NOW
from tests.helpers import run_cadence
from tests.outbox_world import queue_messages
from tests.planner_world import Person, add_campaign, add_people, campaign_spec
from tests.test_cli import assert_one_line_error
from tests.test_delivery_reliability import CONNECTIONS, _settings_file


async def _deliver_into_a_sink(
    settings: Settings, tmp_path: Path, *runs: list[str], env: dict[str, str] | None = None
) -> tuple[SmtpSink, list[subprocess.CompletedProcess[str]]]:
    """Run ``cadence deliver`` once per entry of ``runs`` (its options), one after the other,
    with a settings file that points at ``settings``' database and a sink started for them."""
    async with SmtpSink() as sink:
        config = _settings_file(tmp_path, settings, sink)
        results = [await run_cadence(config, "deliver", *options, env=env) for options in runs]
    return sink, results


async def _queue(store: Store, count: int) -> list[int]:
    ids = await add_people(store, [Person(f"d{number}") for number in range(count)], NOW)
    campaign = await add_campaign(store, campaign_spec("offer", "everyone"), NOW)
    return await queue_messages(store, campaign, sorted(ids.values()), NOW)


async def _sent(store: Store) -> int:
    async with store.reading() as session:
        count = await session.scalar(select(func.count()).where(OutboxMessage.state == "sent"))
    return count or 0


async def test_deliver_until_idle_sends_the_queue_and_prints_the_summary(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    queued = await _queue(store, 25)
    sink, (result, again) = await _deliver_into_a_sink(
        settings,
        tmp_path,
        ["--until-idle", "--no-api"],
        ["--until-idle", "--no-api", "--channel", "email"],
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "Sent 25 (email 25); 0 to retry, 0 failed, 0 cancelled."
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip() == "Sent 0 (none); 0 to retry, 0 failed, 0 cancelled."
    domain = message_id_domain(settings.channels.email)
    assert set(sink.message_ids) == {message_id_for(row, domain) for row in queued}
    assert sink.stats().duplicates == 0
    assert await _sent(store) == len(queued)


@pytest.mark.parametrize("processes", [2, 3])
async def test_two_processes_share_the_queue_and_send_each_message_once(
    store: Store,
    settings: Settings,
    tmp_path: Path,
    processes: int,
    record_property: Callable[[str, object], None],
) -> None:
    """Two: one ``cadence deliver --processes 2``. Three: that, and a second ``cadence
    deliver`` started beside it, as another node would be."""
    queued = await _queue(store, 300)
    # Each process sends at most 100 a second: the others start while the first still
    # has most of the queue ahead of it, so they really do share it.
    slow = {
        "CADENCE_CHANNELS__EMAIL__RATE_PER_SECOND": "100",
        "CADENCE_CHANNELS__EMAIL__BURST": "20",
    }
    commands = [["--until-idle", "--no-api", "--processes", "2"]]
    commands += [["--until-idle", "--no-api"]] * (processes - 2)
    async with SmtpSink() as sink:
        config = _settings_file(tmp_path, settings, sink)
        results = await asyncio.gather(
            *(run_cadence(config, "deliver", *options, env=slow) for options in commands)
        )

    sent = []
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
        summary = re.search(
            r"Sent (\d+) \(email \1\); 0 to retry, 0 failed, 0 cancelled\.", result.stdout
        )
        assert summary is not None, result.stdout
        sent.append(int(summary[1]))
    record_property("sent_by_command", sent)
    record_property("connections", sink.stats().connections)
    assert sum(sent) == len(queued) and all(sent), f"each command sent a share: {sent}"
    domain = message_id_domain(settings.channels.email)
    assert sink.message_ids == Counter({message_id_for(row, domain): 1 for row in queued})
    # Every process opened its connections: the pools of the first ones were not enough.
    assert sink.stats().connections > (processes - 1) * CONNECTIONS
    assert await _sent(store) == len(queued)


async def test_a_channel_it_cannot_serve_is_one_clear_error(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    queued = await _queue(store, 3)
    sink, (unknown, unconfigured) = await _deliver_into_a_sink(
        settings,
        tmp_path,
        ["--until-idle", "--channel", "pigeon"],
        ["--until-idle", "--no-api", "--channel", "sms"],
    )

    # A value that is not a channel at all is a usage error, as click reports them (exit 2).
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "Invalid value for '--channel': 'pigeon' is not one of" in unknown.stderr
    assert "'email', 'sms', 'webhook', 'in_app', 'file'" in unknown.stderr
    assert_one_line_error(unconfigured, "SMS channel has no gateway", "channels.sms.url")
    assert sink.stats().received == 0
    assert await _sent(store) == 0 and len(queued) == 3


async def test_a_store_at_an_old_schema_is_one_clear_error(tmp_path: Path) -> None:
    behind = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    old = Store(create_engine(behind.database_url))
    try:
        await upgrade(old, "0004")
    finally:
        await old.close()
    async with SmtpSink() as sink:
        result = await run_cadence(
            _settings_file(tmp_path, behind, sink), "deliver", "--until-idle", "--no-api"
        )

    assert_one_line_error(
        result, "is at schema 0004", f"not the latest ({head_revision()})", "cadence db upgrade"
    )
    assert sink.stats().connections == 0
