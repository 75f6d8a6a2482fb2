"""Delivery workers end to end against a real SMTP server (the sink) on both databases:
exactly once, List-Unsubscribe, hard bounces, retries with backoff, send-time consent,
per-message template failures, an outage, and the hourly limit."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from channels import open_channels
from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store
from core.delivery import DeliveryWorker
from core.message_ids import message_id_domain, message_id_for
from core.models import Customer, CustomerRollup, OutboxMessage, Suppression
from core.rollups import note_messages_sent
from core.settings import Settings
from core.sink import SmtpSink
from core.suppressions import unsubscribe_customer
from core.templates import Templates
from tests.conftest import NOW
from tests.outbox_world import outbox_states, queue_messages
from tests.planner_world import Person, add_campaign, add_people, address_of, campaign_spec
from tests.polling import eventually

PEOPLE = [Person(f"c{number}") for number in range(5)]


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    async with SmtpSink(keep=True) as running:
        yield running


def _configured(settings: Settings, sink: SmtpSink, **delivery: object) -> Settings:
    return settings.model_copy(
        update={
            "templates_dir": DEFAULT_CONFIG_DIR / "templates",
            "smtp": settings.smtp.model_copy(update={"host": sink.host, "port": sink.port}),
            "delivery": settings.delivery.model_copy(update=delivery),
        }
    )


def _worker(store: Store, settings: Settings, templates: Path | None = None) -> DeliveryWorker:
    folder = templates or settings.resolve(settings.templates_dir)
    return DeliveryWorker(
        store,
        settings,
        open_channels(settings, store, ["email"]),
        Templates(folder, settings.templates),
    )


async def _queue(store: Store, people: list[Person] = PEOPLE) -> list[int]:
    ids = await add_people(store, people, NOW)
    campaign = await add_campaign(store, campaign_spec("offer", "everyone"), NOW)
    return await queue_messages(store, campaign, [ids[p.key] for p in people], NOW)


async def _run(worker: DeliveryWorker, at: datetime = NOW) -> None:
    with clock.using(clock.FixedClock(at)):
        await worker.run(until_idle=True)


async def test_each_message_arrives_once_with_its_id_and_one_click_unsubscribe(
    store: Store, settings: Settings, sink: SmtpSink
) -> None:
    settings = _configured(settings, sink)
    queued = await _queue(store)
    await _run(_worker(store, settings))
    await _run(_worker(store, settings))  # nothing left: sends nothing again

    assert sink.stats().received == sink.stats().distinct == len(PEOPLE)
    domain = message_id_domain(settings.channels.email)
    assert {m.message_id for m in sink.messages} == {message_id_for(i, domain) for i in queued}
    assert {m.recipients[0] for m in sink.messages} == {address_of(p) for p in PEOPLE}
    for received in sink.messages:
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert f"<{settings.api.public_url}/u/" in message["List-Unsubscribe"]
        assert message.get_body(("plain",)) is not None
    assert set((await outbox_states(store)).values()) == {("sent", None)}
    async with store.reading() as session:
        contacted = await session.scalar(
            select(func.count()).where(CustomerRollup.last_message_at == NOW)
        )
    assert contacted == len(PEOPLE)


async def test_a_send_moves_last_message_at_forward_only_and_keeps_the_other_totals(
    store: Store,
) -> None:
    ids = await add_people(store, PEOPLE[:3], NOW)
    fresh, behind, ahead = (ids[person.key] for person in PEOPLE[:3])
    later = NOW + timedelta(days=1)
    async with store.transaction() as session:
        session.add_all(
            [
                CustomerRollup(
                    customer_id=behind,
                    purchase_count=2,
                    revenue_total=30.0,
                    last_message_at=NOW - timedelta(days=9),
                    event_count=5,
                ),
                CustomerRollup(customer_id=ahead, purchase_count=1, last_message_at=later),
            ]
        )
    async with store.transaction() as session:
        await note_messages_sent(session, [fresh, behind, ahead, behind, 10**9], NOW)
    async with store.reading() as session:
        rows = await session.execute(
            select(
                CustomerRollup.customer_id,
                CustomerRollup.last_message_at,
                CustomerRollup.purchase_count,
                CustomerRollup.revenue_total,
                CustomerRollup.event_count,
            )
        )
        found = {row[0]: tuple(row[1:]) for row in rows}
    assert found == {
        fresh: (NOW, 0, 0, 0),
        behind: (NOW, 2, 30.0, 5),
        ahead: (later, 1, 0, 0),
    }


async def test_a_hard_bounce_fails_that_message_only_and_suppresses_the_address(
    store: Store, settings: Settings, sink: SmtpSink
) -> None:
    settings = _configured(settings, sink)
    queued = await _queue(store)
    bouncing = address_of(PEOPLE[1])
    assert bouncing is not None
    sink.reject[bouncing] = (550, "5.1.1 no such mailbox")
    await _run(_worker(store, settings))

    states = await outbox_states(store)
    state, error = states[queued[1]]
    assert state == "failed" and error is not None and "550" in error
    assert {states[i] for i in queued if i != queued[1]} == {("sent", None)}
    async with store.reading() as session:
        reasons = (await session.execute(select(Suppression.address, Suppression.reason))).all()
    assert reasons == [(bouncing, "hard_bounce")]


async def test_a_temporary_refusal_backs_off_honouring_the_hint_then_gives_up(
    store: Store, settings: Settings, sink: SmtpSink
) -> None:
    settings = _configured(settings, sink, max_attempts=3, retry_base_seconds=10)
    (message,) = await _queue(store, PEOPLE[:1])
    address = address_of(PEOPLE[0])
    assert address is not None
    sink.reject[address] = (451, "4.7.1 greylisted, try again in 120 seconds")
    worker = _worker(store, settings)
    at = NOW
    waits: list[float] = []
    for _ in range(3):
        await _run(worker, at)
        async with store.reading() as session:
            row = await session.get(OutboxMessage, message)
        assert row is not None
        if row.state != "retry":
            break
        assert row.next_attempt_at is not None
        waits.append((row.next_attempt_at - at).total_seconds())
        at = row.next_attempt_at
    assert len(waits) == 2 and all(wait >= 120 for wait in waits)
    state, error = (await outbox_states(store))[message]
    assert state == "failed" and error is not None and error.startswith("gave up after 3 attempts")
    assert sink.stats().received == 0


async def test_customers_who_said_no_after_planning_are_not_sent_marketing(
    store: Store, settings: Settings, sink: SmtpSink
) -> None:
    settings = _configured(settings, sink)
    queued = await _queue(store)
    receipt = await queue_messages(
        store,
        *(await _first_campaign_and_customer(store)),
        NOW,
        run_key="receipt",
        category="transactional",
    )
    async with store.transaction() as session:
        customers = dict((await session.execute(select(Customer.external_id, Customer.id))).all())
        await unsubscribe_customer(session, customers["c0"], "email", "test", NOW)
        await session.execute(
            update(Customer).where(Customer.id == customers["c1"]).values(consent_email=False)
        )
    await _run(_worker(store, settings))

    states = await outbox_states(store)
    assert states[queued[0]] == ("cancelled", "unsubscribed after the run was planned")
    assert states[queued[1]] == ("cancelled", "consent withdrawn after the run was planned")
    assert {states[i] for i in queued[2:]} == {("sent", None)}
    assert states[receipt[0]] == ("sent", None)  # a receipt is not marketing
    assert sink.stats().received == len(PEOPLE) - 2 + 1


async def _first_campaign_and_customer(store: Store) -> tuple[int, list[int]]:
    async with store.reading() as session:
        campaign = await session.scalar(select(func.min(OutboxMessage.campaign_id)))
        customer = await session.scalar(select(Customer.id).where(Customer.external_id == "c0"))
    assert campaign is not None and customer is not None
    return campaign, [customer]


async def test_a_template_that_breaks_for_one_customer_fails_only_that_message(
    store: Store, settings: Settings, sink: SmtpSink, tmp_path: Path
) -> None:
    settings = _configured(settings, sink)
    (tmp_path / "offer_a.subject.j2").write_text("Your plan: {{ customer.attributes.plan }}")
    (tmp_path / "offer_a.txt.j2").write_text("Hello {{ customer.name or 'you' }}")
    queued = await _queue(store)
    async with store.transaction() as session:
        await session.execute(
            update(Customer).where(Customer.external_id != "c3").values(attributes={"plan": "gold"})
        )
    await _run(_worker(store, settings, tmp_path))

    states = await outbox_states(store)
    state, error = states[queued[3]]
    assert state == "failed" and error is not None and "plan" in error
    assert {states[i] for i in queued if i != queued[3]} == {("sent", None)}
    subjects = {
        email.message_from_bytes(m.data, policy=email.policy.default)["Subject"]
        for m in sink.messages
    }
    assert subjects == {"Your plan: gold"}


async def test_messages_wait_while_the_server_is_down_and_go_when_it_is_back(
    store: Store, settings: Settings
) -> None:
    down = SmtpSink(keep=True)
    await down.start()
    port = down.port
    await down.stop()  # nothing listens on the port now
    settings = _configured(settings, down, retry_base_seconds=0.2, retry_max_seconds=0.5)
    queued = await _queue(store)
    stop = asyncio.Event()
    worker = _worker(store, settings)
    running = asyncio.create_task(worker.run(stop=stop))

    async def each_retried() -> bool:
        async with store.reading() as session:
            tried = (await session.scalars(select(OutboxMessage.attempts))).all()
        return min(tried) >= 2

    await eventually(each_retried, "every message tried again while the server was down")
    assert "sent" not in {state for state, _ in (await outbox_states(store)).values()}
    back = SmtpSink(port=port, keep=True)
    async with back:
        for _ in range(100):
            if back.stats().received == len(queued):
                break
            await asyncio.sleep(0.1)
        stop.set()
        await running
    assert back.stats().received == back.stats().distinct == len(queued)
    assert {state for state, _ in (await outbox_states(store)).values()} == {"sent"}


async def test_the_hourly_limit_holds_in_every_window_and_everyone_is_served(
    store: Store, settings: Settings, sink: SmtpSink
) -> None:
    email_settings = settings.channels.email.model_copy(update={"max_per_hour": 100})
    settings = _configured(settings, sink).model_copy(
        update={"channels": settings.channels.model_copy(update={"email": email_settings})}
    )
    people = [Person(f"p{number}") for number in range(250)]
    await _queue(store, people)
    worker = _worker(store, settings)
    at = NOW
    while at < NOW + timedelta(hours=4):
        with clock.using(clock.FixedClock(at)):
            batch, _ = await worker.claim("email")
            if batch:
                await worker.deliver("email", batch)
        at += timedelta(minutes=7)
    await worker.close()
    async with store.reading() as session:
        sent_at = list((await session.execute(select(OutboxMessage.sent_at))).scalars())
    times = sorted(t for t in sent_at if t is not None)
    assert len(times) == len(sent_at) == 250
    for index, start in enumerate(times):
        in_the_hour = [t for t in times[index:] if t < start + timedelta(hours=1)]
        assert len(in_the_hour) <= 100
    assert sink.stats().received == 250
