"""The outbox as a work queue: claims under a lease, owner-checked records, take-over after
a lease runs out, and no message claimed twice by concurrent workers."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.db import Store
from core.db.direct import DirectConnection
from core.models import Campaign, OutboxMessage
from core.outbox import (
    Retry,
    Settled,
    claim_messages,
    fold_sends,
    oldest_sent_since,
    record_retries,
    record_sent,
    record_settled,
    release_leases,
    sent_since,
)
from tests.conftest import NOW
from tests.outbox_world import outbox_states, queue_messages
from tests.planner_world import Person, add_campaign, add_people, campaign_spec

LEASE = timedelta(minutes=5)


async def _world(store: Store, people: int = 6) -> tuple[int, list[int]]:
    ids = await add_people(store, [Person(f"c{i}") for i in range(people)], NOW)
    campaign = await add_campaign(store, campaign_spec("offer", "everyone"), NOW)
    return campaign, sorted(ids.values())


async def _claim(
    store: Store, owner: str, limit: int = 100, at: timedelta = timedelta(0)
) -> list[int]:
    async with store.transaction() as session:
        claimed = await claim_messages(
            session, channel="email", owner=owner, now=NOW + at, limit=limit, lease=LEASE
        )
    return [message.id for message in claimed]


async def _sent(store: Store, owner: str, ids: list[int]) -> int:
    connection = DirectConnection(store)
    try:
        return await record_sent(connection, owner, ids, NOW)
    finally:
        await connection.close()


async def _fold(store: Store) -> int:
    async with store.transaction() as session:
        return await fold_sends(session)


async def test_a_claim_takes_due_messages_of_its_channel_oldest_first(store: Store) -> None:
    campaign, customers = await _world(store)
    later = await queue_messages(
        store, campaign, customers[:2], NOW, run_key="later", due_at=NOW + timedelta(hours=1)
    )
    due = await queue_messages(
        store, campaign, customers[2:4], NOW, due_at=NOW - timedelta(minutes=1)
    )
    sms = await queue_messages(store, campaign, customers[4:], NOW, run_key="sms", channel="sms")

    assert await _claim(store, "a", limit=1) == due[:1]
    assert await _claim(store, "a") == due[1:]
    assert await _claim(store, "a") == []
    await _sent(store, "a", due)
    assert await _claim(store, "a", at=timedelta(hours=1)) == later
    states = await outbox_states(store)
    assert {states[i][0] for i in sms} == {"queued"}
    assert {states[i][0] for i in later} == {"sending"}


async def test_messages_of_a_paused_campaign_wait(store: Store) -> None:
    campaign, customers = await _world(store)
    queued = await queue_messages(store, campaign, customers, NOW)
    async with store.transaction() as session:
        await session.execute(update(Campaign).values(status="paused"))
    assert await _claim(store, "a") == []
    async with store.transaction() as session:
        await session.execute(update(Campaign).values(status="active"))
    assert await _claim(store, "a") == queued


async def test_an_expired_lease_returns_the_message_and_the_old_owner_cannot_record(
    store: Store,
) -> None:
    campaign, customers = await _world(store, 2)
    queued = await queue_messages(store, campaign, customers, NOW)
    assert await _claim(store, "dead") == queued
    assert await _claim(store, "new", at=LEASE - timedelta(seconds=1)) == []

    assert await _claim(store, "new", at=LEASE + timedelta(seconds=1)) == queued
    assert await _sent(store, "dead", queued) == 0
    assert await _sent(store, "new", queued[:1]) == 1
    async with store.transaction() as session:
        await record_settled(session, "dead", [Settled(queued[1], "failed", "late")])
    assert await _fold(store) == (1 if store.backend == "sqlite" else 0)
    states = await outbox_states(store)
    assert states[queued[0]] == ("sent", None)
    assert states[queued[1]] == ("sending", None)


async def test_a_recorded_send_is_never_taken_over_and_folds_at_its_time(store: Store) -> None:
    campaign, customers = await _world(store, 2)
    queued = await queue_messages(store, campaign, customers, NOW)
    assert await _claim(store, "slow") == queued
    # The server accepted the first message; then the worker stalled past its lease.
    assert await _sent(store, "slow", queued[:1]) == 1
    # SQLite keeps the record beside the row until a claim folds it; PostgreSQL marks it.
    recorded = "sending" if store.backend == "sqlite" else "sent"
    assert (await outbox_states(store))[queued[0]] == (recorded, None)
    assert await _claim(store, "new", at=LEASE + timedelta(seconds=1)) == queued[1:]
    async with store.reading() as session:
        rows = await session.execute(
            select(OutboxMessage.id, OutboxMessage.state, OutboxMessage.sent_at)
        )
        by_id = {row_id: (state, sent_at) for row_id, state, sent_at in rows}
    assert by_id[queued[0]] == ("sent", NOW)
    assert by_id[queued[1]] == ("sending", None)
    assert await _fold(store) == 0


async def test_retries_wait_for_their_time_and_count_attempts(store: Store) -> None:
    campaign, customers = await _world(store, 1)
    (message,) = await queue_messages(store, campaign, customers, NOW)
    await _claim(store, "a")
    async with store.transaction() as session:
        await record_retries(session, "a", [Retry(message, NOW + timedelta(minutes=1), "451")])
    assert await outbox_states(store) == {message: ("retry", "451")}
    assert await _claim(store, "a", at=timedelta(seconds=59)) == []
    async with store.transaction() as session:
        claimed = await claim_messages(
            session,
            channel="email",
            owner="a",
            now=NOW + timedelta(minutes=1),
            limit=5,
            lease=LEASE,
        )
    assert [(m.id, m.attempts) for m in claimed] == [(message, 2)]


async def test_releasing_leases_hands_messages_back_at_once(store: Store) -> None:
    campaign, customers = await _world(store, 3)
    queued = await queue_messages(store, campaign, customers, NOW)
    await _claim(store, "stopping")
    async with store.transaction() as session:
        assert await release_leases(session, "stopping", NOW) == 3
    assert await _claim(store, "other") == queued


async def test_the_hourly_window_counts_sent_and_in_flight_messages(store: Store) -> None:
    campaign, customers = await _world(store, 4)
    queued = await queue_messages(store, campaign, customers, NOW)
    await _claim(store, "a", limit=3)
    await _sent(store, "a", queued[:2])
    # The same counts before the sends are folded into their rows and after.
    for folded in (2 if store.backend == "sqlite" else 0, 0):
        async with store.transaction() as session:
            assert await sent_since(session, "email", NOW - timedelta(hours=1)) == 3
            assert await sent_since(session, "email", NOW) == 1
            assert await sent_since(session, "sms", NOW - timedelta(hours=1)) == 0
            assert await oldest_sent_since(session, "email", NOW - timedelta(hours=1)) == NOW
            assert await oldest_sent_since(session, "email", NOW) is None
        assert await _fold(store) == folded


async def test_concurrent_workers_never_claim_the_same_message(store: Store) -> None:
    campaign, customers = await _world(store, 60)
    queued = await queue_messages(store, campaign, customers, NOW)
    claims = await asyncio.gather(*(_claim(store, f"w{i}", limit=7) for i in range(12)))
    claimed = [message for claim in claims for message in claim]
    assert len(claimed) == len(set(claimed)) == len(queued)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # SQLite's write lock
async def test_a_send_recorded_while_another_process_writes_waits_for_it_off_the_loop(
    store: Store,
) -> None:
    campaign, customers = await _world(store, people=2)
    queued = await queue_messages(store, campaign, customers, NOW)
    await _claim(store, "a")
    assert store.database_file is not None
    other = sqlite3.connect(store.database_file, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # as another process's writer would
    connection = DirectConnection(store)
    try:
        recording = asyncio.create_task(record_sent(connection, "a", queued, NOW))
        # The event loop keeps turning while the record waits for the lock.
        for _ in range(5):
            await asyncio.sleep(0.02)
        assert not recording.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(recording, 10) == len(queued)
        # Free again: the next record goes straight through.
        assert await record_sent(connection, "a", queued, NOW) == 0
    finally:
        other.close()
        await connection.close()
    assert await _fold(store) == len(queued)
