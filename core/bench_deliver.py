"""``cadence bench deliver``: the outbox drained over SMTP, against two floors.

Setup, not timed: a fresh SQLite store with ``messages`` customers (each
with an e-mail address and consent), one segment holding them all and an
ad-hoc e-mail campaign with the default program's ``welcome`` template
(subject, text and HTML), planned into ``messages`` queued outbox rows by
the real planner; an SMTP sink (:mod:`core.sink`, the same server as
``cadence sink``) in a separate process.

Timed (``seconds``, ``msgs_per_s``): a :class:`core.delivery.DeliveryWorker`
with the e-mail channel (``connections`` persistent SMTP connections) from
the first claim until the queue is empty: claim, read the customers,
render, build, send, record, for every message.

The floor (``floor_msgs_per_s``), same run, same sink: the same messages
rendered and built beforehand, sent with plain aiosmtplib over the same
number of persistent connections, no rendering and no database; measured
once before and once after the timed run (``floor_runs_msgs_per_s``) and
averaged, since these machines speed up and slow down. ``ratio`` =
``msgs_per_s / floor_msgs_per_s``. ``wire_msgs_per_s``: the same messages
written straight to sockets speaking the least SMTP a client can: what the
sink itself can take. ``rss_mb_growth``: the process's resident memory after
the timed run minus before it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
from sqlalchemy import insert, literal, select

from channels.mime import BuiltMessage, MessageBuilder
from config import DEFAULT_CONFIG_DIR, DEFAULT_SETTINGS_FILE
from core import clock
from core.bench_data import BENCH_NOW, CACHE_DIR
from core.campaigns import store_campaign
from core.db import Store, open_store
from core.delivery import DeliveryStats, DeliveryWorker
from core.migrations import upgrade
from core.models import Customer, OutboxMessage, Segment, SegmentMember
from core.outbox import ClaimedMessage
from core.planner.runs import plan_runs, request_run
from core.program import load_program
from core.program.model import CampaignSpec
from core.settings import ChannelSettings, EmailSettings, PolicySettings, Settings, SmtpSettings
from core.templates import Templates
from core.workers import run_delivery

_TEMPLATE = "welcome"
_SENDER = "news@bench.example"


async def bench_deliver(messages: int, connections: int, processes: int) -> dict[str, Any]:
    """Run the benchmark; the JSON line's fields (see the module docstring)."""
    CACHE_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as scratch:
        folder = Path(scratch)
        stats_file = folder / "sink-stats.json"
        sink, port = _start_sink(stats_file)
        try:
            # The workers share the connections: as many in all as the floors use.
            per_process = max(connections // processes, 1)
            settings = _settings(folder / "bench.db", port, per_process)
            store = open_store(settings)
            try:
                with clock.using(clock.FixedClock(BENCH_NOW)):
                    await _queue(store, settings, messages)
                templates = Templates(settings.resolve(settings.templates_dir), settings.templates)
                prebuilt = await _prebuilt(store, settings, templates)
                wire = await _wire(port, prebuilt, connections)
                # The machine's speed drifts: one floor before and one after the timed run.
                floors = [await _floor(port, prebuilt, connections)]
                seconds, stats = await _drain(store, settings, processes)
                floors.append(await _floor(port, prebuilt, connections))
            finally:
                await store.close()
        finally:
            sink.terminate()
            sink.wait(timeout=10)
        received = _sink_received(stats_file)
    msgs_per_s = stats.sent / seconds
    floor = sum(floors) / len(floors)
    return {
        "benchmark": "deliver",
        "messages": messages,
        "sent": stats.sent,
        # The wire and the two floors sent every message once each.
        "sink_received_from_workers": None if received is None else received - 3 * messages,
        "connections": per_process * processes,
        "processes": processes,
        "seconds": round(seconds, 3),
        "msgs_per_s": round(msgs_per_s, 1),
        "floor_msgs_per_s": round(floor, 1),
        "floor_runs_msgs_per_s": [round(run, 1) for run in floors],
        "ratio": round(msgs_per_s / floor, 3),
        "wire_msgs_per_s": round(wire, 1),
        "rss_mb_growth": round(stats.rss_mb_growth, 1),
    }


def _settings(database: Path, port: int, connections: int) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{database}",
        settings_file=DEFAULT_SETTINGS_FILE,
        # Every message due now: the benchmark measures sending, not the policy.
        policy=PolicySettings(quiet_hours=None),
        smtp=SmtpSettings(host="127.0.0.1", port=port),
        channels=ChannelSettings(
            email=EmailSettings(from_address=_SENDER, connections=connections)
        ),
    )


def _start_sink(stats_file: Path) -> tuple[subprocess.Popen[str], int]:
    """``cadence sink`` in its own process, on a free port; returns it and the port."""
    command = [sys.executable, "-c", "from core.cli import main; main()", "sink"]
    command += ["--port", "0", "--stats", str(stats_file)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    port = _port_in(line)
    if port is None:
        process.kill()
        raise RuntimeError(f"the SMTP sink did not start: {line!r}")
    return process, port


def _port_in(line: str) -> int | None:
    """The port in the sink's "listening on HOST:PORT" line."""
    for word in line.replace(",", " ").split():
        host, _, port = word.rpartition(":")
        if host and port.isdigit():
            return int(port)
    return None


def _sink_received(stats_file: Path) -> int | None:
    try:
        received: int = json.loads(stats_file.read_text())["received"]
    except (OSError, ValueError, KeyError):
        return None
    return received


async def _queue(store: Store, settings: Settings, messages: int) -> None:
    """``messages`` customers in one segment, and a launched campaign's run planned for them."""
    now = clock.now()
    await upgrade(store)
    rows = [
        {
            "external_id": f"b{number}",
            "email": f"customer{number}@bench.example",
            "name": f"Customer {number}",
            "consent_email": True,
            "registered_at": now - timedelta(days=number % 365),
            "attributes": {},
            "created_at": now,
            "updated_at": now,
        }
        for number in range(messages)
    ]
    spec = CampaignSpec.model_validate(
        {
            "name": "bench-deliver",
            "kind": "ad_hoc",
            "target": {"segment": "bench-everyone"},
            "channel": "email",
            "variants": [_TEMPLATE],
            "control": 0,
        }
    )
    async with store.transaction() as session:
        await session.execute(insert(Customer), rows)
        segment = Segment(
            name="bench-everyone",
            description="every benchmark customer",
            rule="true",
            tags=[],
            size=messages,
            created_at=now,
            updated_at=now,
        )
        session.add(segment)
        await session.flush()
        members = select(literal(segment.id), Customer.id, literal(now))
        await session.execute(
            insert(SegmentMember).from_select(["segment_id", "customer_id", "entered_at"], members)
        )
        campaign = store_campaign(session, spec, origin="launch", now=now)
        await session.flush()
        run_id = await request_run(session, campaign, "bench", "launch", now)
    program = load_program(DEFAULT_CONFIG_DIR / "program")
    await plan_runs(store, program, settings, now, [run_id])


async def _prebuilt(store: Store, settings: Settings, templates: Templates) -> list[BuiltMessage]:
    """The queued messages rendered and built as the worker will, without claiming them:
    what the floors send."""
    worker = DeliveryWorker(store, settings, {}, templates)
    outbox = OutboxMessage.__table__.c
    columns = (outbox.id, outbox.run_id, outbox.campaign_id, outbox.customer_id)
    async with store.reading() as session:
        rows = await session.execute(
            select(*columns, outbox.channel, outbox.category, outbox.variant)
            .where(outbox.state == "queued")
            .order_by(outbox.id)
        )
        batch = [ClaimedMessage(*row, attempts=1) for row in rows]
    ready, _ = await worker.prepare("email", batch)
    builder = MessageBuilder(settings.channels.email)
    return [builder.build(message) for message in ready]


async def _floor(port: int, messages: list[BuiltMessage], connections: int) -> float:
    """Messages per second with plain aiosmtplib over ``connections`` connections."""

    async def connection(queue: list[BuiltMessage]) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        while queue:
            message = queue.pop()
            await client.sendmail(_SENDER, [message.recipient], message.data)
        await client.quit()

    return await _timed(connection, messages, connections)


async def _wire(port: int, messages: list[BuiltMessage], connections: int) -> float:
    """Messages per second written straight to sockets, with the least SMTP there is."""

    async def connection(queue: list[BuiltMessage]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def reply() -> None:
            while (await reader.readline())[3:4] == b"-":  # "250-" continues, "250 " ends
                pass

        await reply()
        writer.write(b"EHLO bench.example\r\n")
        await reply()
        sender = f"MAIL FROM:<{_SENDER}>\r\n".encode()
        while queue:
            message = queue.pop()
            for command in (sender, f"RCPT TO:<{message.recipient}>\r\n".encode(), b"DATA\r\n"):
                writer.write(command)
                await reply()
            writer.write(message.data.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
            await reply()
        writer.write(b"QUIT\r\n")
        await reply()
        writer.close()
        await writer.wait_closed()

    return await _timed(connection, messages, connections)


async def _timed(connection: Any, messages: list[BuiltMessage], connections: int) -> float:
    queue = list(messages)
    started = time.perf_counter()
    await asyncio.gather(*(connection(queue) for _ in range(connections)))
    return len(messages) / (time.perf_counter() - started)


async def _drain(store: Store, settings: Settings, processes: int) -> tuple[float, DeliveryStats]:
    """The timed part: ``processes`` workers send the queue until it is empty."""
    started = time.perf_counter()
    stats = await run_delivery(
        store, settings, channels=["email"], until_idle=True, serve_http=False, processes=processes
    )
    return time.perf_counter() - started, stats
