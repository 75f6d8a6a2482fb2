"""Delivery against a real SMTP server (the sink) that goes away, on both databases.

The server down for a while, then back: the messages wait as ``retry`` (none given up,
none lost) and all go out once it is back, each exactly once. The issue's full one-minute
outage is the slow test (``-m slow``); the default run has a short one. And a server that
drops the connection every few messages: everyone gets the message, repeated at most
once per dropped connection when the drop swallowed the server's reply, never otherwise.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store
from core.message_ids import message_id_domain, message_id_for
from core.models import OutboxMessage
from core.settings import Settings
from core.sink import SmtpSink
from core.workers import run_delivery
from tests.conftest import NOW
from tests.outbox_world import outbox_states, queue_messages
from tests.planner_world import Person, add_campaign, add_people, campaign_spec
from tests.polling import eventually

MESSAGES = 60


@dataclass(frozen=True)
class Outage:
    """How long the server is down, and retry settings in proportion to it."""

    seconds: float
    retry_base_seconds: float
    retry_max_seconds: float


def _configured(settings: Settings, port: int, **delivery: object) -> Settings:
    return settings.model_copy(
        update={
            "templates_dir": DEFAULT_CONFIG_DIR / "templates",
            "smtp": settings.smtp.model_copy(update={"host": "127.0.0.1", "port": port}),
            "delivery": settings.delivery.model_copy(update=delivery),
        }
    )


async def _queue(store: Store, count: int = MESSAGES) -> list[int]:
    ids = await add_people(store, [Person(f"o{number}") for number in range(count)], NOW)
    campaign = await add_campaign(store, campaign_spec("offer", "everyone"), NOW)
    return await queue_messages(store, campaign, sorted(ids.values()), clock.now())


async def _down_port() -> int:
    """A loopback port where an SMTP server listened a moment ago and nothing does now."""
    probe = SmtpSink()
    await probe.start()
    port = probe.port
    await probe.stop()
    return port


async def _attempts(store: Store) -> tuple[int, int]:
    """The fewest and the most attempts any message has had."""
    async with store.reading() as session:
        fewest, most = (
            await session.execute(
                select(func.min(OutboxMessage.attempts), func.max(OutboxMessage.attempts))
            )
        ).one()
    return fewest, most


async def _outage_then_recovery(store: Store, settings: Settings, outage: Outage) -> None:
    port = await _down_port()
    max_attempts = 100
    settings = _configured(
        settings,
        port,
        retry_base_seconds=outage.retry_base_seconds,
        retry_max_seconds=outage.retry_max_seconds,
        max_attempts=max_attempts,
        idle_seconds=0.05,
    )
    queued = await _queue(store)
    stop = asyncio.Event()
    delivering = asyncio.create_task(
        run_delivery(store, settings, channels=["email"], serve_http=False, stop=stop)
    )
    try:
        await asyncio.sleep(outage.seconds)
        waiting = await outbox_states(store)
        assert {state for state, _ in waiting.values()} <= {"retry", "sending"}, waiting
        assert sorted(waiting) == queued, "nothing is lost"
        fewest, most = await _attempts(store)
        assert fewest >= 2 and most < max_attempts, "tried again and again, never given up"

        async with SmtpSink(port=port, keep=True) as back:

            async def all_sent() -> bool:
                states = await outbox_states(store)
                return {state for state, _ in states.values()} == {"sent"}

            # The longest wait between attempts, with its jitter, and time to send.
            recovery = outage.retry_max_seconds * 1.2 + 10
            await eventually(
                all_sent, "every message goes out once the server is back", seconds=recovery
            )
    finally:
        stop.set()
        stats = await delivering

    domain = message_id_domain(settings.channels.email)
    assert back.message_ids == Counter({message_id_for(row, domain): 1 for row in queued})
    assert back.stats().received == len(queued)
    assert (stats.sent, stats.failed) == (len(queued), 0)
    assert set((await outbox_states(store)).values()) == {("sent", None)}


async def test_messages_wait_out_a_short_outage_and_each_goes_once_it_is_over(
    store: Store, settings: Settings
) -> None:
    await _outage_then_recovery(store, settings, Outage(3, 0.2, 0.5))


@pytest.mark.slow
async def test_messages_wait_out_a_one_minute_outage_and_each_goes_once_it_is_over(
    store: Store, settings: Settings
) -> None:
    await _outage_then_recovery(store, settings, Outage(60, 1, 5))


@dataclass(frozen=True)
class Drops:
    """How many messages go out, and after how many on a connection the server drops it."""

    messages: int
    drop_after: int
    connections: int | None = None
    """The e-mail channel's connections (None: the default pool)."""


@pytest.mark.parametrize("lose_reply", [False, True], ids=["reply_sent", "reply_lost"])
@pytest.mark.parametrize(
    "drops",
    [
        pytest.param(Drops(120, 7), id="every_7_of_120"),
        # The scale: one connection, dropped after every 2,500 of 10,000 messages.
        pytest.param(
            Drops(10_000, 2_500, connections=1), id="every_2500_of_10000", marks=pytest.mark.slow
        ),
    ],
)
async def test_connections_dropped_every_few_messages_reach_everyone(
    store: Store, settings: Settings, lose_reply: bool, drops: Drops
) -> None:
    async with SmtpSink(keep=True, drop_after=drops.drop_after, lose_reply=lose_reply) as sink:
        settings = _configured(settings, sink.port)
        if drops.connections is not None:
            email = settings.channels.email.model_copy(update={"connections": drops.connections})
            channels = settings.channels.model_copy(update={"email": email})
            settings = settings.model_copy(update={"channels": channels})
        queued = await _queue(store, drops.messages)
        with clock.using(clock.FixedClock(clock.now())):
            stats = await run_delivery(
                store, settings, channels=["email"], until_idle=True, serve_http=False
            )
    received = sink.stats()
    domain = message_id_domain(settings.channels.email)
    assert set(sink.message_ids) == {message_id_for(row, domain) for row in queued}
    assert received.dropped > 0
    if lose_reply:
        assert 0 < received.duplicates <= received.dropped
        assert all(count <= 2 for count in sink.message_ids.values())
    else:
        assert received.duplicates == 0
    assert (stats.sent, stats.retried, stats.failed) == (len(queued), 0, 0)
    assert set((await outbox_states(store)).values()) == {("sent", None)}
