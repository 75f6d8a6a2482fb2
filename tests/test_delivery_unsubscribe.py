"""One-click unsubscribe during a running campaign, over real HTTP, on both databases.

The delivery process runs as ``cadence deliver`` runs it: the workers and the HTTP API
in one event loop (:func:`core.workers.run_delivery` with ``serve_http``), e-mail into a
real SMTP server (the sink) slowly enough that the campaign is still going when a
customer POSTs ``List-Unsubscribe=One-Click`` to their signed link. That customer gets
nothing more by e-mail, everyone else gets the campaign exactly once, and the text
message the customer is also due still reaches them: unsubscribing from e-mail is not
unsubscribing from everything.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store
from core.links import link_signer
from core.message_ids import message_id_domain, message_id_for
from core.models import OutboxMessage
from core.outbox import waiting_messages
from core.settings import Settings
from core.sink import SmtpSink
from core.workers import run_delivery
from tests.conftest import NOW
from tests.http_receiver import Receiver, receiver
from tests.outbox_world import outbox_states, queue_messages
from tests.planner_world import Person, add_campaign, add_people, address_of, campaign_spec
from tests.polling import eventually
from tests.test_api import ONE_CLICK, consent_of, free_port, suppressions

__all__ = ["receiver"]

CUSTOMERS = 200
LEAVING = Person("leaving", phone="+351910000999", consent_sms=True)
"""The customer who unsubscribes from e-mail half-way through the campaign."""
PEOPLE = [*(Person(f"stay{number:03d}") for number in range(CUSTOMERS - 1)), LEAVING]
LATER = timedelta(seconds=60)
"""When the leaving customer's follow-up e-mail and text message are due."""
RATE_PER_SECOND = 60
"""E-mails a second: slow enough that the campaign takes seconds, not milliseconds."""


def _configured(settings: Settings, sink: SmtpSink, sms_gateway: str) -> Settings:
    port = free_port()
    channels = settings.channels
    return settings.model_copy(
        update={
            "templates_dir": DEFAULT_CONFIG_DIR / "templates",
            "smtp": settings.smtp.model_copy(update={"host": sink.host, "port": sink.port}),
            "api": settings.api.model_copy(
                update={"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"}
            ),
            "channels": channels.model_copy(
                update={
                    "email": channels.email.model_copy(
                        update={"rate_per_second": RATE_PER_SECOND, "burst": 5, "connections": 2}
                    ),
                    "sms": channels.sms.model_copy(update={"url": sms_gateway}),
                }
            ),
            "delivery": settings.delivery.model_copy(
                update={"batch_size": 5, "idle_seconds": 0.05}
            ),
        }
    )


async def test_one_click_unsubscribe_mid_campaign_stops_that_customers_email_only(
    store: Store, settings: Settings, receiver: Receiver
) -> None:
    ids = await add_people(store, PEOPLE, NOW)
    leaving = ids[LEAVING.key]
    campaign = await add_campaign(store, campaign_spec("offer", "everyone"), NOW)
    everyone = [ids[person.key] for person in PEOPLE]
    campaign_rows = await queue_messages(store, campaign, everyone, NOW - timedelta(seconds=1))
    leaving_now = dict(zip(everyone, campaign_rows, strict=True))[leaving]
    async with store.transaction() as session:  # last in the campaign's queue
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.id == leaving_now).values(due_at=NOW)
        )
    (follow_up,) = await queue_messages(
        store, campaign, [leaving], NOW, run_key="follow-up", due_at=NOW + LATER
    )
    sms_campaign = await add_campaign(
        store, campaign_spec("bonus", "everyone", channel="sms", variants=["bonus_sms"]), NOW
    )
    (text_message,) = await queue_messages(
        store, sms_campaign, [leaving], NOW, channel="sms", variant="bonus_sms", due_at=NOW + LATER
    )
    stayed = [row for row in campaign_rows if row != leaving_now]

    with clock.using(clock.FixedClock(NOW)) as frozen:
        assert isinstance(frozen, clock.FixedClock)
        async with SmtpSink(keep=True) as sink:
            settings = _configured(settings, sink, receiver.url)
            stop = asyncio.Event()
            delivering = asyncio.create_task(
                run_delivery(store, settings, channels=["email", "sms"], stop=stop)
            )
            try:
                async with httpx.AsyncClient(base_url=settings.api.public_url) as http:

                    async def api_up() -> bool:
                        try:
                            return (await http.get("/healthz")).status_code == 200
                        except httpx.TransportError:
                            return False

                    async def some_arrived() -> bool:
                        return sink.stats().received >= 10

                    await eventually(api_up, "the API inside the delivery process answers")
                    await eventually(some_arrived, "the campaign's first e-mails arrive")
                    assert (await outbox_states(store))[leaving_now] == ("queued", None)
                    async with store.transaction() as session:
                        signer = await link_signer(session, settings, NOW)
                    link = signer.unsubscribe_url(leaving_now, leaving, "email", NOW)
                    response = await http.post(link, data=ONE_CLICK)
                assert response.status_code == 200
                assert sink.stats().received < len(stayed), "the campaign was still running"
                frozen.advance(LATER)  # the follow-up and the text message are due now

                async def all_done() -> bool:
                    async with store.reading() as session:
                        return await waiting_messages(session) == 0 and len(receiver.received) == 1

                await eventually(all_done, "every message is sent or cancelled")
            finally:
                stop.set()
                stats = await delivering

    domain = message_id_domain(settings.channels.email)
    assert sink.message_ids == Counter({message_id_for(row, domain): 1 for row in stayed})
    assert address_of(LEAVING) not in {m.recipients[0] for m in sink.messages}
    assert stats.by_channel == {"email": len(stayed), "sms": 1}
    states = await outbox_states(store)
    assert states[leaving_now] == states[follow_up] == ("cancelled", "unsubscribed")
    assert {states[row] for row in stayed} == {("sent", None)}
    assert states[text_message] == ("sent", None)
    (gateway_request,) = receiver.received
    assert gateway_request.fields()["to"] == LEAVING.phone
    assert await consent_of(store, leaving) == (False, True)
    assert ("email", address_of(LEAVING), "unsubscribed", "one_click") in await suppressions(store)
    async with store.reading() as session:
        sms_sent = await session.scalar(
            select(OutboxMessage.sent_at).where(OutboxMessage.id == text_message)
        )
    assert sms_sent == NOW + LATER
