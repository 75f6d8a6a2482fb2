"""The HTTP API on both databases: unsubscribe, tracking, bounce webhooks, in-app messages,
health, and the server itself over real HTTP on loopback.

Most tests talk to the Starlette app through httpx's ASGI transport (the app
for real, without a socket); one starts :func:`core.api.serve_api` on a free
port and talks to it over TCP.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import delete, func, insert, select

from core import clock
from core.api import create_app, serve_api
from core.db import Store, create_engine
from core.errors import CadenceError
from core.links import LinkSigner, link_signer
from core.message_ids import message_id_for
from core.models import (
    CampaignRun,
    Customer,
    CustomerRollup,
    Event,
    InAppMessage,
    OutboxMessage,
    Suppression,
)
from core.settings import Settings
from tests.conftest import NOW
from tests.planner_world import Person, add_campaign, add_people, address_of, campaign_spec

API_TOKEN = "test-api-token-5f1c9a"
CAMPAIGN = "spring-offer"
PEOPLE = [Person("alice", phone="+351910000001", consent_sms=True), Person("bob"), Person("carol")]
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def with_api(settings: Settings, **api: Any) -> Settings:
    """``settings`` with some ``api`` settings changed."""
    return settings.model_copy(update={"api": settings.api.model_copy(update=api)})


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return with_api(settings, token=SecretStr(API_TOKEN))


@pytest.fixture
async def client(store: Store, api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app over ``store``, through httpx's ASGI transport."""
    app = create_app(store, api_settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@dataclass(frozen=True)
class World:
    """Three customers, each sent one e-mail of :data:`CAMPAIGN`, and the link signer."""

    customers: dict[str, int]
    sent: dict[str, int]
    """The outbox id of each customer's sent e-mail."""
    campaign_id: int
    signer: LinkSigner

    def unsubscribe(self, key: str, channel: str = "email") -> str:
        return path_of(
            self.signer.unsubscribe_url(self.sent[key], self.customers[key], channel, NOW)
        )

    def open(self, key: str) -> str:
        return path_of(self.signer.open_url(self.sent[key], self.customers[key], NOW))

    def click(self, key: str, url: str) -> str:
        return path_of(self.signer.click_url(self.sent[key], self.customers[key], url, NOW))

    def message_id(self, key: str) -> str:
        return message_id_for(self.sent[key], "news.example")


def path_of(url: str) -> str:
    return httpx.URL(url).raw_path.decode()


def address(key: str) -> str:
    found = address_of(next(person for person in PEOPLE if person.key == key))
    assert found is not None
    return found


async def add_outbox(
    store: Store,
    campaign_id: int,
    customers: Mapping[str, int],
    now: datetime,
    *,
    state: str = "sent",
    channel: str = "email",
    category: str = "marketing",
) -> dict[str, int]:
    """One outbox row per customer in a new run of the campaign; their ids by key."""
    async with store.transaction() as session:
        run = CampaignRun(
            campaign_id=campaign_id,
            run_key=f"test-{state}-{channel}-{category}-{now.isoformat()}",
            occasion="manual",
            status="planned",
            due_at=now,
            planned_at=now,
            outcomes={},
        )
        session.add(run)
        await session.flush()
        rows = [
            {
                "run_id": run.id,
                "campaign_id": campaign_id,
                "customer_id": customer_id,
                "channel": channel,
                "category": category,
                "variant": "offer_a",
                "state": state,
                "due_at": now,
                "created_at": now,
                "sent_at": now if state == "sent" else None,
            }
            for customer_id in customers.values()
        ]
        await session.execute(insert(OutboxMessage), rows)
        found = await session.execute(
            select(OutboxMessage.customer_id, OutboxMessage.id).where(
                OutboxMessage.run_id == run.id
            )
        )
        by_customer = {customer_id: row_id for customer_id, row_id in found}
    return {key: by_customer[customer_id] for key, customer_id in customers.items()}


async def make_world(store: Store, settings: Settings) -> World:
    customers = await add_people(store, PEOPLE, NOW - timedelta(days=30))
    campaign_id = await add_campaign(store, campaign_spec(CAMPAIGN, "everyone"), NOW)
    sent = await add_outbox(store, campaign_id, customers, NOW - timedelta(hours=1))
    async with store.transaction() as session:
        signer = await link_signer(session, settings, NOW)
    return World(customers, sent, campaign_id, signer)


@pytest.fixture
async def world(store: Store, api_settings: Settings, frozen_clock: clock.FixedClock) -> World:
    return await make_world(store, api_settings)


async def events_of(store: Store, kind: str) -> list[Event]:
    async with store.reading() as session:
        found = await session.execute(select(Event).where(Event.type == kind).order_by(Event.id))
        return list(found.scalars())


async def suppressions(store: Store) -> set[tuple[str, str, str, str | None]]:
    async with store.reading() as session:
        found = await session.execute(
            select(Suppression.channel, Suppression.address, Suppression.reason, Suppression.source)
        )
        return {(channel, address, reason, source) for channel, address, reason, source in found}


async def outbox_rows(store: Store) -> dict[int, tuple[str, str | None]]:
    """Every outbox row's state and error, by id."""
    async with store.reading() as session:
        found = await session.execute(
            select(OutboxMessage.id, OutboxMessage.state, OutboxMessage.error)
        )
        return {row_id: (state, error) for row_id, state, error in found}


async def snapshot(store: Store) -> dict[str, Any]:
    """Everything the API may change: to show that a refused request changed nothing."""
    async with store.reading() as session:
        events = (await session.execute(select(func.count()).select_from(Event))).scalar_one()
        consent = await session.execute(
            select(Customer.id, Customer.consent_email, Customer.consent_sms)
        )
        rollups = await session.execute(
            select(CustomerRollup.customer_id, CustomerRollup.last_open_at)
        )
        read = await session.execute(select(InAppMessage.id, InAppMessage.read_at))
        return {
            "events": events,
            "consent": sorted(tuple(row) for row in consent),
            "rollups": sorted(tuple(row) for row in rollups),
            "in_app_read": sorted(tuple(row) for row in read),
            "suppressions": await suppressions(store),
            "outbox": await outbox_rows(store),
        }


async def consent_of(store: Store, customer_id: int) -> tuple[bool | None, bool | None]:
    async with store.reading() as session:
        found = await session.execute(
            select(Customer.consent_email, Customer.consent_sms).where(Customer.id == customer_id)
        )
        email, sms = found.one()
        return email, sms


# --- unsubscribe ---------------------------------------------------------------------------


async def test_the_confirmation_page_names_the_address_and_changes_nothing(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    queued = await add_outbox(store, world.campaign_id, world.customers, NOW, state="queued")
    before = await snapshot(store)

    response = await client.get(world.unsubscribe("alice"))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = unescape(response.text)
    assert address("alice") in page and "e-mails" in page
    assert '<form method="post">' in response.text
    assert 'name="List-Unsubscribe" value="One-Click"' in response.text
    # Self-contained: nothing fetched from elsewhere, nothing run.
    assert "<script" not in response.text and "src=" not in response.text
    assert "http" not in response.text.lower().replace("http-equiv", "")
    assert response.headers["cache-control"] == "no-store"
    assert await snapshot(store) == before
    assert (await outbox_rows(store))[queued["alice"]] == ("queued", None)


async def test_one_click_unsubscribes_cancels_waiting_marketing_and_is_idempotent(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    alice = {"alice": world.customers["alice"]}
    waiting = await add_outbox(store, world.campaign_id, alice, NOW, state="queued")
    retrying = await add_outbox(store, world.campaign_id, alice, NOW + timedelta(1), state="retry")
    receipt = await add_outbox(
        store,
        world.campaign_id,
        alice,
        NOW + timedelta(2),
        state="queued",
        category="transactional",
    )
    sms = await add_outbox(
        store, world.campaign_id, alice, NOW + timedelta(3), state="queued", channel="sms"
    )
    others = await add_outbox(
        store, world.campaign_id, world.customers, NOW + timedelta(4), state="queued"
    )

    response = await client.post(world.unsubscribe("alice"), data=ONE_CLICK)

    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    assert address("alice") in unescape(response.text)
    assert await suppressions(store) == {("email", address("alice"), "unsubscribed", "one_click")}
    assert await consent_of(store, world.customers["alice"]) == (False, True)
    rows = await outbox_rows(store)
    assert rows[waiting["alice"]] == ("cancelled", "unsubscribed")
    assert rows[retrying["alice"]] == ("cancelled", "unsubscribed")
    assert rows[others["alice"]] == ("cancelled", "unsubscribed")
    assert rows[receipt["alice"]] == ("queued", None)  # transactional mail still goes
    assert rows[sms["alice"]] == ("queued", None)  # another channel
    assert rows[world.sent["alice"]] == ("sent", None)
    assert rows[others["bob"]] == ("queued", None)
    (event,) = await events_of(store, "unsubscribed")
    assert event.customer_id == world.customers["alice"]
    assert event.properties == {
        "outbox_id": world.sent["alice"],
        "campaign": CAMPAIGN,
        "channel": "email",
    }

    before = await snapshot(store)
    again = await client.post(world.unsubscribe("alice"), data=ONE_CLICK)
    assert again.status_code == 200 and "You are unsubscribed" in again.text
    assert await snapshot(store) == before


async def test_the_confirmation_pages_button_unsubscribes(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    url = world.unsubscribe("bob")
    form = (await client.get(url)).text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]+)">', form))

    response = await client.post(url, data=fields)

    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert await suppressions(store) == {("email", address("bob"), "unsubscribed", "one_click")}
    assert (await consent_of(store, world.customers["bob"]))[0] is False


async def test_an_sms_unsubscribe_link_withdraws_sms_consent_only(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    url = world.unsubscribe("alice", channel="sms")
    assert "+351910000001" in (await client.get(url)).text

    assert (await client.post(url, data=ONE_CLICK)).status_code == 200

    assert await consent_of(store, world.customers["alice"]) == (True, False)
    assert await suppressions(store) == {("sms", "+351910000001", "unsubscribed", "one_click")}


# --- opens and clicks ----------------------------------------------------------------------


async def test_the_open_pixel_is_a_transparent_gif_and_records_an_open(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    response = await client.get(world.open("bob"))

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    assert int.from_bytes(response.content[6:8], "little") == 1  # width
    assert int.from_bytes(response.content[8:10], "little") == 1  # height
    assert "no-cache" in response.headers["cache-control"]
    assert "no-store" in response.headers["cache-control"]
    (event,) = await events_of(store, "message_opened")
    assert event.customer_id == world.customers["bob"]
    assert event.occurred_at == NOW and event.source == "tracking"
    assert event.properties == {"outbox_id": world.sent["bob"], "campaign": CAMPAIGN}
    async with store.reading() as session:
        rollup = await session.get(CustomerRollup, world.customers["bob"])
    assert rollup is not None and rollup.last_open_at == NOW


async def test_an_open_of_a_message_whose_row_is_gone_is_still_recorded(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    async with store.transaction() as session:
        await session.execute(delete(OutboxMessage).where(OutboxMessage.id == world.sent["carol"]))

    assert (await client.get(world.open("carol"))).status_code == 200

    (event,) = await events_of(store, "message_opened")
    assert event.customer_id == world.customers["carol"]
    assert event.properties == {"outbox_id": world.sent["carol"], "campaign": None}


async def test_a_head_request_gets_the_pixel_but_is_no_open(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    response = await client.head(world.open("bob"))
    assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
    assert await events_of(store, "message_opened") == []


async def test_a_click_redirects_to_the_signed_url_and_records_it(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    destination = "https://shop.example/spring?utm_source=cadence&item=42"

    response = await client.get(world.click("alice", destination))

    assert response.status_code == 302
    assert response.headers["location"] == destination
    (event,) = await events_of(store, "message_clicked")
    assert event.customer_id == world.customers["alice"]
    assert event.properties == {
        "outbox_id": world.sent["alice"],
        "campaign": CAMPAIGN,
        "url": destination,
    }
    async with store.reading() as session:
        rollup = await session.get(CustomerRollup, world.customers["alice"])
    assert rollup is not None and rollup.last_click_at == NOW


# --- health --------------------------------------------------------------------------------


async def test_health_is_ok_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:////nonexistent-folder/cadence.db",
        "postgresql+asyncpg://postgres@127.0.0.1:1/cadence",
    ],
    ids=["sqlite", "postgresql"],
)
async def test_health_is_503_when_the_database_does_not_answer(url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=url, settings_file=tmp_path / "cadence.toml")
    down = Store(create_engine(url))
    try:
        transport = httpx.ASGITransport(app=create_app(down, settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/healthz")
    finally:
        await down.close()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unavailable"}


# --- bounce webhooks -----------------------------------------------------------------------


async def test_generic_bounce_webhook_suppresses_hard_bounces_and_complaints(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    body = {
        "events": [
            {
                "type": "bounce",
                "email": address("bob"),
                "bounce_type": "hard",
                "message_id": world.message_id("bob"),
                "status": "5.1.1",
                "reason": "550 5.1.1 user unknown",
                "occurred_at": "2026-11-23T11:30:00Z",
            },
            {
                "type": "bounce",
                "email": address("carol"),
                "bounce_type": "soft",
                "message_id": world.message_id("carol"),
                "reason": "452 4.2.2 mailbox full",
            },
            {"type": "complaint", "email": address("alice")},
        ]
    }

    response = await client.post("/v1/bounces", json=body, headers=AUTH)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": 3,
        "hard": 1,
        "soft": 1,
        "complaints": 1,
        "matched": 2,
        "suppressed": 2,
    }
    assert await suppressions(store) == {
        ("email", address("bob"), "hard_bounce", "webhook"),
        ("email", address("alice"), "complaint", "webhook"),
    }
    rows = await outbox_rows(store)
    assert rows[world.sent["bob"]] == ("sent", "hard bounce: 5.1.1 550 5.1.1 user unknown")
    assert rows[world.sent["carol"]] == ("sent", "soft bounce: 452 4.2.2 mailbox full")
    assert rows[world.sent["alice"]] == ("sent", None)  # no Message-ID: the row is unknown
    bounced = {event.customer_id: event for event in await events_of(store, "message_bounced")}
    assert set(bounced) == {world.customers["bob"], world.customers["carol"]}
    bob = bounced[world.customers["bob"]]
    assert bob.occurred_at == datetime.fromisoformat("2026-11-23T11:30:00+00:00")
    assert bob.properties == {
        "outbox_id": world.sent["bob"],
        "campaign": CAMPAIGN,
        "bounce_type": "hard",
        "status": "5.1.1",
        "reason": "550 5.1.1 user unknown",
    }
    (complaint,) = await events_of(store, "message_complained")
    assert complaint.customer_id == world.customers["alice"]  # found by address

    # A provider retrying the same delivery records nothing new.
    before = await snapshot(store)
    body["events"] = body["events"][:1]
    again = await client.post("/v1/bounces", json=body, headers=AUTH)
    assert again.json()["suppressed"] == 0
    assert await snapshot(store) == before


async def test_ses_notifications_are_read_bare_and_in_their_sns_envelope(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    mail = {
        "messageId": "0100018c-ses-own-id",
        "commonHeaders": {"messageId": world.message_id("bob")},
    }
    bounce = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "timestamp": "2026-11-23T10:00:00.000Z",
            "bouncedRecipients": [
                {"emailAddress": address("bob"), "status": "5.1.1", "diagnosticCode": "smtp; 550"}
            ],
        },
        "mail": mail,
    }
    complaint = {
        "eventType": "Complaint",
        "complaint": {
            "complaintFeedbackType": "abuse",
            "complainedRecipients": [{"emailAddress": address("carol")}],
        },
        "mail": {"headers": [{"name": "Message-ID", "value": world.message_id("carol")}]},
    }
    envelope = {"Type": "Notification", "Message": json.dumps(complaint)}

    first = await client.post("/v1/bounces", json=bounce, headers=AUTH)
    second = await client.post("/v1/bounces", json=envelope, headers=AUTH)

    assert first.json()["hard"] == 1 and first.json()["matched"] == 1
    assert second.json()["complaints"] == 1 and second.json()["matched"] == 1
    assert await suppressions(store) == {
        ("email", address("bob"), "hard_bounce", "webhook"),
        ("email", address("carol"), "complaint", "webhook"),
    }


async def test_sendgrid_event_lists_map_bounces_drops_and_spam_reports(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    events = [
        {"event": "delivered", "email": address("alice"), "timestamp": 1795000000},
        {
            "event": "bounce",
            "type": "bounce",
            "email": address("bob"),
            "smtp-id": world.message_id("bob"),
            "status": "5.1.1",
            "reason": "550 unknown user",
            "timestamp": 1795000000,
        },
        {"event": "bounce", "type": "blocked", "email": address("carol"), "status": "4.7.1"},
        {"event": "spamreport", "email": address("alice"), "timestamp": 1795000001},
        {"event": "dropped", "email": "gone@example.net", "reason": "Bounced Address"},
        {"event": "dropped", "email": "left@example.net", "reason": "Unsubscribed Address"},
    ]

    response = await client.post("/v1/bounces", json=events, headers=AUTH)

    assert response.json() == {
        "received": 4,
        "hard": 2,
        "soft": 1,
        "complaints": 1,
        "matched": 1,
        "suppressed": 3,
    }
    assert await suppressions(store) == {
        ("email", address("bob"), "hard_bounce", "webhook"),
        ("email", "gone@example.net", "hard_bounce", "webhook"),
        ("email", address("alice"), "complaint", "webhook"),
    }


async def test_the_bounce_webhook_is_off_until_a_token_is_set(
    store: Store, settings: Settings, world: World
) -> None:
    transport = httpx.ASGITransport(app=create_app(store, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(
            "/v1/bounces", json={"events": []}, headers={"Authorization": "Bearer anything"}
        )
    assert response.status_code == 503
    assert "set api.token" in response.json()["error"]


# --- in-app messages -----------------------------------------------------------------------


async def add_in_app_messages(store: Store, world: World) -> dict[str, int]:
    """Three in-app messages for alice (the oldest already read); their ids by title."""
    alice = {"alice": world.customers["alice"]}
    ids: dict[str, int] = {}
    for hours, title in ((3, "welcome"), (2, "tip"), (1, "offer")):
        at = NOW - timedelta(hours=hours)
        outbox = await add_outbox(store, world.campaign_id, alice, at, channel="in_app")
        async with store.transaction() as session:
            message = InAppMessage(
                outbox_id=outbox["alice"],
                customer_id=world.customers["alice"],
                campaign=CAMPAIGN,
                title=title,
                body=f"{title} body",
                html=f"<p>{title}</p>",
                created_at=at,
                read_at=at if title == "welcome" else None,
            )
            session.add(message)
            await session.flush()
            ids[title] = message.id
    return ids


async def test_in_app_messages_are_listed_newest_first_with_a_read_flag(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    await add_in_app_messages(store, world)

    response = await client.get("/v1/customers/alice/messages", headers=AUTH)

    assert response.status_code == 200
    listing = response.json()
    assert listing["customer"] == "alice" and listing["unread"] == 2
    assert [(m["title"], m["read"]) for m in listing["messages"]] == [
        ("offer", False),
        ("tip", False),
        ("welcome", True),
    ]
    assert listing["messages"][0]["body"] == "offer body"
    assert listing["messages"][0]["campaign"] == CAMPAIGN
    limited = await client.get("/v1/customers/alice/messages?limit=1&unread=true", headers=AUTH)
    assert [m["title"] for m in limited.json()["messages"]] == ["offer"]
    empty = await client.get("/v1/customers/bob/messages", headers=AUTH)
    assert empty.json() == {"customer": "bob", "unread": 0, "messages": []}


async def test_marking_an_in_app_message_read_records_one_open(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    ids = await add_in_app_messages(store, world)
    url = f"/v1/customers/alice/messages/{ids['tip']}/read"

    first = await client.post(url, headers=AUTH)
    second = await client.post(url, headers=AUTH)

    assert first.status_code == second.status_code == 200
    assert first.json() == {"id": ids["tip"], "read": True, "read_at": NOW.isoformat()}
    assert second.json() == first.json()
    listing = (await client.get("/v1/customers/alice/messages", headers=AUTH)).json()
    assert listing["unread"] == 1
    (event,) = await events_of(store, "message_opened")
    assert event.customer_id == world.customers["alice"] and event.source == "in_app"
    assert event.properties is not None and event.properties["campaign"] == CAMPAIGN
    # Another customer's message is not found under alice, nor alice's under bob.
    assert (await client.post("/v1/customers/bob/messages/1/read", headers=AUTH)).status_code == 404
    missing = await client.get("/v1/customers/nobody/messages", headers=AUTH)
    assert missing.status_code == 404 and "nobody" in missing.json()["error"]


# --- the server over real HTTP -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_serve_api_answers_over_real_http_until_cancelled(
    store: Store, api_settings: Settings, world: World
) -> None:
    port = free_port()
    settings = with_api(api_settings, host="127.0.0.1", port=port)
    started = asyncio.Event()
    task = asyncio.create_task(serve_api(store, settings, started=started))
    await asyncio.wait_for(started.wait(), timeout=10)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok", "database": "ok"}
            assert (await http.get(world.open("carol"))).content.startswith(b"GIF89a")
            unsubscribed = await http.post(world.unsubscribe("carol"), data=ONE_CLICK)
            assert unsubscribed.status_code == 200
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert len(await events_of(store, "message_opened")) == 1
    assert ("email", address("carol"), "unsubscribed", "one_click") in await suppressions(store)
    async with httpx.AsyncClient(base_url=base) as http:  # the port is closed again
        with pytest.raises(httpx.ConnectError):
            await http.get("/healthz")


async def test_serve_api_says_when_its_port_is_taken(store: Store, api_settings: Settings) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        settings = with_api(api_settings, host="127.0.0.1", port=port)
        with pytest.raises(CadenceError, match=f"cannot listen on 127.0.0.1:{port}"):
            await serve_api(store, settings)
