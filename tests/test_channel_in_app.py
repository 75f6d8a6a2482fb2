"""The in-app channel on both databases: one row per message, one INSERT per batch, and a
replayed message stored only once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, event, insert, select
from sqlalchemy.engine import Connection

from channels.base import OutgoingMessage, SendOutcome
from channels.in_app import InAppChannel
from core import clock
from core.db import Store
from core.models import CampaignRun, InAppMessage, OutboxMessage
from tests.conftest import NOW
from tests.planner_world import Person, add_campaign, add_people, campaign_spec


async def queued(store: Store, count: int) -> list[OutgoingMessage]:
    """``count`` customers with an in-app outbox row each, as the worker would send them."""
    ids = await add_people(store, [Person(f"p{n}") for n in range(count)], NOW)
    campaign_id = await add_campaign(
        store, campaign_spec("tips", "everyone", channel="in_app"), NOW
    )
    async with store.transaction() as session:
        run = CampaignRun(
            campaign_id=campaign_id, run_key="r1", occasion="manual", status="planned", due_at=NOW
        )
        session.add(run)
        await session.flush()
        rows: list[dict[str, Any]] = [
            {
                "run_id": run.id,
                "campaign_id": campaign_id,
                "customer_id": customer_id,
                "channel": "in_app",
                "category": "marketing",
                "variant": "a",
                "state": "sending",
                "due_at": NOW,
                "created_at": NOW,
            }
            for customer_id in ids.values()
        ]
        outbox = await session.execute(
            insert(OutboxMessage).returning(OutboxMessage.id, OutboxMessage.customer_id), rows
        )
        pairs = sorted(outbox.all())
    return [
        OutgoingMessage(
            outbox_id=outbox_id,
            message_id=f"<cadence.{outbox_id}@cadence.example>",
            customer_id=customer_id,
            customer_ref=f"p{customer_id}",
            address=None,
            name=None,
            subject=None if outbox_id % 2 else f"Tip {outbox_id}",
            text=f"Did you know? {outbox_id}",
            html=f"<p>Did you know? {outbox_id}</p>" if outbox_id % 3 else None,
            campaign="tips",
            variant="a",
            category="marketing",
        )
        for outbox_id, customer_id in pairs
    ]


async def stored(store: Store) -> list[tuple[Any, ...]]:
    async with store.reading() as session:
        rows = await session.execute(
            select(
                InAppMessage.outbox_id,
                InAppMessage.customer_id,
                InAppMessage.campaign,
                InAppMessage.title,
                InAppMessage.body,
                InAppMessage.html,
                InAppMessage.read_at,
            ).order_by(InAppMessage.outbox_id)
        )
        return [tuple(row) for row in rows]


def expected_row(message: OutgoingMessage) -> tuple[Any, ...]:
    return (
        message.outbox_id,
        message.customer_id,
        "tips",
        message.subject,
        message.text,
        message.html,
        None,
    )


async def test_each_message_becomes_one_in_app_message(store: Store) -> None:
    batch = await queued(store, 6)
    channel = InAppChannel(store)
    await channel.open()
    with clock.using(clock.FixedClock(NOW)):
        outcomes = await channel.send(batch)
    await channel.close()

    assert outcomes == [SendOutcome.sent(message.outbox_id) for message in batch]
    assert await stored(store) == [expected_row(message) for message in batch]
    async with store.reading() as session:
        created = set((await session.execute(select(InAppMessage.created_at))).scalars())
    assert {clock.as_utc(moment) for moment in created} == {NOW}


async def test_a_replayed_message_is_stored_once(store: Store) -> None:
    batch = await queued(store, 4)
    channel = InAppChannel(store)
    await channel.send(batch[:2])
    reported: list[SendOutcome] = []

    async def report(outcome: SendOutcome) -> None:
        reported.append(outcome)

    outcomes = await channel.send(batch, report)

    assert outcomes == reported == [SendOutcome.sent(message.outbox_id) for message in batch]
    assert await stored(store) == [expected_row(message) for message in batch]


async def test_a_batch_is_one_insert(store: Store) -> None:
    batch = await queued(store, 25)
    inserts: list[str] = []

    def count(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            inserts.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    try:
        await InAppChannel(store).send(batch)
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", count)

    assert len(inserts) == 1
    assert len(await stored(store)) == 25


async def test_a_batch_the_store_refuses_is_retried_whole(store: Store) -> None:
    batch = await queued(store, 3)
    async with store.transaction() as session:
        await session.execute(delete(OutboxMessage))

    outcomes = await InAppChannel(store).send(batch)

    assert [outcome.status for outcome in outcomes] == ["retry"] * 3
    assert str(outcomes[0].reason).startswith("cannot store in-app messages: IntegrityError")


async def test_an_empty_batch_touches_nothing(store: Store) -> None:
    assert await InAppChannel(store).send([]) == []
