"""Every channel but e-mail (see test_delivery.py) end to end on both databases: messages
queued in the outbox, sent by the delivery workers (:func:`core.workers.run_delivery`, as
``cadence deliver`` runs them) and found where the channel puts them: a real local HTTP
server as the SMS gateway and the webhook receiver, the in-app rows read back through the
HTTP API, the JSON-lines file and the maildir. Each message arrives once, its row ends
``sent``, a second run sends nothing, and the signed links it carries work in the API."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import mailbox
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from config import DEFAULT_CONFIG_DIR
from core import clock, event_types
from core.api import create_app
from core.db import Store
from core.message_ids import message_id_domain, message_id_for, outbox_id_of
from core.models import InAppMessage, OutboxMessage
from core.settings import Settings
from core.workers import run_delivery
from tests.conftest import NOW
from tests.http_receiver import Receiver, receiver
from tests.outbox_world import queue_messages
from tests.planner_world import Person, add_campaign, add_people, address_of, campaign_spec
from tests.test_api import API_TOKEN, AUTH, ONE_CLICK, consent_of, events_of, suppressions

__all__ = ["receiver"]

PEOPLE = [
    Person(f"p{number}", phone=f"+3519100000{number}", consent_sms=True) for number in range(4)
]
OFFER = "https://www.example.com/offers/monthly"
"""Where the call to action of ``config/templates/offer_a`` leads."""
BONUS = "https://www.example.com/bonus"
SMS_TEMPLATE = (
    "{{ brand }}: {{ customer.first_name or 'Hi' }}, a bonus is waiting: "
    f"{{{{ link('{BONUS}') }}}} Stop: {{{{ unsubscribe_url }}}}"
)
"""A text message with a tracked link and its unsubscribe link (``bonus_stop.txt.j2``)."""


@dataclass(frozen=True)
class Queued:
    """One queued outbox row and whom it is for."""

    outbox_id: int
    customer_id: int
    person: Person


@dataclass(frozen=True)
class Delivered:
    """A message as found where its channel put it."""

    outbox_id: int
    text: str


def _configured(settings: Settings, templates: Path | None = None, **channels: object) -> Settings:
    """``settings`` with the shipped templates (or ``templates``), an API token and some
    channels' settings replaced."""
    return settings.model_copy(
        update={
            "templates_dir": templates or DEFAULT_CONFIG_DIR / "templates",
            "api": settings.api.model_copy(update={"token": SecretStr(API_TOKEN)}),
            "channels": settings.channels.model_copy(update=channels),
        }
    )


async def _queue(store: Store, channel: str, variant: str) -> list[Queued]:
    """A marketing message of ``variant`` on ``channel`` for each of :data:`PEOPLE`."""
    ids = await add_people(store, PEOPLE, NOW)
    spec = campaign_spec("offer", "everyone", channel=channel, variants=[variant])
    campaign = await add_campaign(store, spec, NOW)
    customers = [ids[person.key] for person in PEOPLE]
    queued = await queue_messages(store, campaign, customers, NOW, channel=channel, variant=variant)
    return [Queued(*row) for row in zip(queued, customers, PEOPLE, strict=True)]


async def _deliver_twice(store: Store, settings: Settings, channel: str) -> None:
    """Run the workers on ``channel`` until idle, twice: the first run sends every
    message, the second finds nothing left to send."""
    with clock.using(clock.FixedClock(NOW)):
        first = await run_delivery(
            store, settings, channels=[channel], until_idle=True, serve_http=False
        )
        again = await run_delivery(
            store, settings, channels=[channel], until_idle=True, serve_http=False
        )
    assert (first.sent, first.retried, first.failed, first.cancelled) == (len(PEOPLE), 0, 0, 0)
    assert first.by_channel == {channel: len(PEOPLE)}
    assert (again.sent, again.batches) == (0, 0)


async def _assert_sent_once(store: Store, queued: list[Queued]) -> None:
    async with store.reading() as session:
        rows = await session.execute(
            select(
                OutboxMessage.id, OutboxMessage.state, OutboxMessage.sent_at, OutboxMessage.attempts
            )
        )
        found = {row_id: (state, sent_at, attempts) for row_id, state, sent_at, attempts in rows}
    assert found == {message.outbox_id: ("sent", NOW, 1) for message in queued}


def _links(settings: Settings, text: str) -> dict[str, list[str]]:
    """The signed links in ``text``, as API paths, by kind (``c`` click, ``u`` unsubscribe,
    ``o`` open)."""
    pattern = re.escape(settings.api.public_url) + r"(/([cuo])/[\w-]+\.[\w-]+)"
    found: dict[str, list[str]] = {}
    for match in re.finditer(pattern, text):
        found.setdefault(match.group(2), []).append(match.group(1))
    return found


async def _assert_links_work(
    store: Store,
    settings: Settings,
    message: Delivered,
    queued: Queued,
    destination: str,
    unsubscribes: tuple[str, str] | None,
) -> None:
    """The click link of ``message`` redirects to ``destination`` and records the click;
    its unsubscribe link (when the channel has one: ``unsubscribes`` is the suppression's
    channel and address) withdraws consent and suppresses that address."""
    links = _links(settings, message.text)
    app = create_app(store, settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=settings.api.public_url) as api:
        (click,) = links["c"]
        response = await api.get(click)
        assert response.status_code == 302
        assert response.headers["location"] == destination
        (event,) = await events_of(store, event_types.MESSAGE_CLICKED)
        assert event.customer_id == queued.customer_id
        assert event.properties is not None
        assert event.properties["outbox_id"] == message.outbox_id
        assert event.properties["url"] == destination

        if unsubscribes is None:
            assert "u" not in links, "a channel without consent offers no unsubscribe link"
            return
        (unsubscribe,) = links["u"]
        assert (await api.post(unsubscribe, data=ONE_CLICK)).status_code == 200
    channel, address = unsubscribes
    assert (channel, address, "unsubscribed", "one_click") in await suppressions(store)
    email_consent, sms_consent = await consent_of(store, queued.customer_id)
    assert (email_consent if channel == "email" else sms_consent) is False


async def test_sms_goes_to_the_gateway_once_per_customer_with_its_auth_and_links(
    store: Store, settings: Settings, receiver: Receiver, tmp_path: Path
) -> None:
    (tmp_path / "bonus_stop.txt.j2").write_text(SMS_TEMPLATE, encoding="utf-8")
    sms = settings.channels.sms.model_copy(
        update={
            "url": receiver.url,
            "username": "cadence",
            "password": SecretStr("gateway-secret"),
            "sender": "Cadence",
        }
    )
    settings = _configured(settings, tmp_path, sms=sms)
    queued = await _queue(store, "sms", "bonus_stop")

    await _deliver_twice(store, settings, "sms")

    await _assert_sent_once(store, queued)
    basic = "Basic " + base64.b64encode(b"cadence:gateway-secret").decode()
    assert {request.headers["authorization"] for request in receiver.received} == {basic}
    bodies = [request.fields() for request in receiver.received]
    assert sorted(body["to"] for body in bodies) == sorted(str(p.phone) for p in PEOPLE)
    assert {body["from"] for body in bodies} == {"Cadence"}
    by_phone = {message.person.phone: message for message in queued}
    delivered = [Delivered(by_phone[body["to"]].outbox_id, body["text"]) for body in bodies]
    for message in delivered:
        assert message.text.startswith("Cadence: Hi, a bonus is waiting: ")
    first = queued[0]
    (sent,) = [message for message in delivered if message.outbox_id == first.outbox_id]
    await _assert_links_work(store, settings, sent, first, BONUS, ("sms", str(first.person.phone)))


async def test_webhooks_are_signed_as_documented_and_posted_once_per_message(
    store: Store, settings: Settings, receiver: Receiver
) -> None:
    secret = "webhook-shared-secret"
    webhook = settings.channels.webhook.model_copy(
        update={"url": receiver.url, "secret": SecretStr(secret)}
    )
    settings = _configured(settings, webhook=webhook)
    queued = await _queue(store, "webhook", "offer_a")

    await _deliver_twice(store, settings, "webhook")

    await _assert_sent_once(store, queued)
    domain = message_id_domain(settings.channels.email)
    payloads = []
    for request in receiver.received:
        # X-Cadence-Signature: t=<unix seconds>,v1=HMAC-SHA256(secret, "<t>." + body)
        fields = dict(
            part.split("=", 1) for part in request.headers["x-cadence-signature"].split(",")
        )
        assert int(fields["t"]) == int(NOW.timestamp())
        expected = hmac.new(
            secret.encode(), f"{fields['t']}.".encode() + request.body, hashlib.sha256
        )
        assert hmac.compare_digest(fields["v1"], expected.hexdigest())
        payload = json.loads(request.body)
        assert request.headers["x-cadence-message-id"] == payload["message_id"]
        assert payload["message_id"] == message_id_for(payload["outbox_id"], domain)
        payloads.append(payload)
    assert sorted(p["outbox_id"] for p in payloads) == [m.outbox_id for m in queued]
    by_outbox = {p["outbox_id"]: p for p in payloads}
    for message in queued:
        payload = by_outbox[message.outbox_id]
        assert payload["customer_ref"] == message.person.key
        assert (payload["campaign"], payload["variant"], payload["category"]) == (
            "offer",
            "offer_a",
            "marketing",
        )
        assert payload["subject"] == "Friend, your offer of the month at Cadence"
    first = queued[0]
    sent = Delivered(first.outbox_id, by_outbox[first.outbox_id]["text"])
    await _assert_links_work(store, settings, sent, first, OFFER, None)


async def test_in_app_messages_are_stored_once_and_served_by_the_api(
    store: Store, settings: Settings
) -> None:
    settings = _configured(settings)
    queued = await _queue(store, "in_app", "offer_a")

    await _deliver_twice(store, settings, "in_app")

    await _assert_sent_once(store, queued)
    async with store.reading() as session:
        rows = await session.execute(select(InAppMessage.outbox_id, InAppMessage.customer_id))
        stored = sorted((outbox_id, customer_id) for outbox_id, customer_id in rows)
    assert stored == [(message.outbox_id, message.customer_id) for message in queued]
    app = create_app(store, settings)
    transport = httpx.ASGITransport(app=app)
    delivered: dict[str, Delivered] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
        for message in queued:
            response = await api.get(f"/v1/customers/{message.person.key}/messages", headers=AUTH)
            assert response.status_code == 200
            listing = response.json()
            assert listing["unread"] == 1
            (shown,) = listing["messages"]
            assert shown["campaign"] == "offer"
            assert shown["title"] == "Friend, your offer of the month at Cadence"
            assert shown["body"].startswith("Hello friend,")
            delivered[message.person.key] = Delivered(message.outbox_id, shown["body"])
    first = queued[0]
    await _assert_links_work(store, settings, delivered[first.person.key], first, OFFER, None)


def _read_jsonl(path: Path) -> list[tuple[Delivered, str | None, str]]:
    """Each line's message, address and Message-ID."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        written = json.loads(line)
        found.append(
            (
                Delivered(written["outbox_id"], written["text"]),
                written["address"],
                written["message_id"],
            )
        )
    return found


def _read_maildir(path: Path) -> list[tuple[Delivered, str | None, str]]:
    """Each stored e-mail's message (its plain-text part), recipient and Message-ID."""
    found = []
    for stored in mailbox.Maildir(path, create=False):
        parsed = email.message_from_bytes(stored.as_bytes(), policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        message_id = str(parsed["Message-ID"])
        outbox_id = outbox_id_of(message_id)
        assert outbox_id is not None
        text = parsed.get_body(("plain",))
        assert text is not None
        found.append(
            (
                Delivered(outbox_id, text.get_content()),
                parsed["To"].addresses[0].addr_spec,
                message_id,
            )
        )
    return found


@pytest.mark.parametrize("file_format", ["jsonl", "maildir"])
async def test_the_file_channel_writes_each_message_once(
    store: Store, settings: Settings, tmp_path: Path, file_format: Literal["jsonl", "maildir"]
) -> None:
    path = tmp_path / "out" / ("outbox.jsonl" if file_format == "jsonl" else "outbox")
    file = settings.channels.file.model_copy(update={"path": path, "format": file_format})
    settings = _configured(settings, file=file)
    queued = await _queue(store, "file", "offer_a")

    await _deliver_twice(store, settings, "file")

    await _assert_sent_once(store, queued)
    written = _read_jsonl(path) if file_format == "jsonl" else _read_maildir(path)
    domain = message_id_domain(settings.channels.email)
    assert sorted((m.outbox_id, address, message_id) for m, address, message_id in written) == [
        (q.outbox_id, address_of(q.person), message_id_for(q.outbox_id, domain)) for q in queued
    ]
    first = queued[0]
    (sent,) = [message for message, _, _ in written if message.outbox_id == first.outbox_id]
    assert sent.text.startswith("Hello friend,")
    await _assert_links_work(
        store, settings, sent, first, OFFER, ("email", str(address_of(first.person)))
    )
