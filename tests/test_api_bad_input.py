"""The HTTP API against bad input, on both databases: missing or wrong tokens, tampered,
truncated, misused and expired links, oversized and malformed bodies, open-redirect
attempts. Each refused request must change nothing in the store, and no secret may
reach the log."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import delete

from core.api import serve_api
from core.db import Store
from core.links import link_signer
from core.models import Customer
from core.settings import Settings
from tests import test_api
from tests.conftest import NOW
from tests.test_api import (
    API_TOKEN,
    AUTH,
    ONE_CLICK,
    World,
    add_in_app_messages,
    address,
    events_of,
    free_port,
    path_of,
    snapshot,
    with_api,
)

# The fixtures of tests.test_api, here over this module's api_settings.
client = test_api.client
world = test_api.world

MAX_BODY = 64 * 1024
LINK_SECRET = "link-secret-3c8e1f0b7d"
SHOP = "https://shop.example/spring"


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return with_api(settings, token=SecretStr(API_TOKEN), max_body_bytes=MAX_BODY)


def hard_bounce(key: str) -> dict[str, object]:
    return {"events": [{"type": "bounce", "email": address(key), "bounce_type": "hard"}]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rewritten(path: str, change: dict[int, object]) -> str:
    """The link ``path`` with fields of its signed payload changed but its MAC kept: what
    someone who edits a link they were sent would try."""
    prefix, token = path.rsplit("/", 1)
    payload, mac = token.split(".")
    fields: list[object] = list(_unb64(payload).decode().split("|", 4))
    for index, value in change.items():
        fields[index] = value
    return f"{prefix}/{_b64('|'.join(map(str, fields)).encode())}.{mac}"


# --- bearer tokens -------------------------------------------------------------------------

BAD_AUTHORIZATIONS = {
    "missing": {},
    "wrong token": {"Authorization": "Bearer not-the-token"},
    "token prefix": {"Authorization": f"Bearer {API_TOKEN[:-1]}"},
    "token and more": {"Authorization": f"Bearer {API_TOKEN}x"},
    "basic scheme": {"Authorization": f"Basic {API_TOKEN}"},
    "no scheme": {"Authorization": API_TOKEN},
}


async def test_machine_endpoints_refuse_a_missing_or_wrong_bearer_token(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    ids = await add_in_app_messages(store, world)
    before = await snapshot(store)

    for case, headers in BAD_AUTHORIZATIONS.items():
        answers = [
            await client.post("/v1/bounces", json=hard_bounce("bob"), headers=headers),
            await client.get("/v1/customers/alice/messages", headers=headers),
            await client.post(f"/v1/customers/alice/messages/{ids['tip']}/read", headers=headers),
        ]
        for answer in answers:
            assert answer.status_code == 401, (case, answer.text)
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert "Authorization: Bearer" in answer.json()["error"]
        assert await snapshot(store) == before, case


# --- link tokens ---------------------------------------------------------------------------


def bad_links(world: World) -> dict[str, tuple[str, int]]:
    """Refused link paths, each with the status it must get."""
    alice, bob, signer = world.customers["alice"], world.customers["bob"], world.signer
    sent = world.sent["alice"]
    unsubscribe, opened, click = (
        world.unsubscribe("alice"),
        world.open("alice"),
        world.click("alice", SHOP),
    )
    expired = NOW - timedelta(days=signer.ttl.days + 1)
    return {
        "unsubscribe for another customer": (rewritten(unsubscribe, {2: bob}), 400),
        "unsubscribe of another channel": (rewritten(unsubscribe, {4: "sms"}), 400),
        "unsubscribe made to last": (rewritten(unsubscribe, {3: 4_000_000_000}), 400),
        "unsubscribe truncated": (unsubscribe[:-3], 400),
        "unsubscribe without its MAC": (unsubscribe.split(".")[0], 400),
        "open token as unsubscribe": ("/u/" + opened.rsplit("/", 1)[1], 400),
        "click token as unsubscribe": ("/u/" + click.rsplit("/", 1)[1], 400),
        "unsubscribe expired": (
            path_of(signer.unsubscribe_url(sent, alice, "email", expired)),
            410,
        ),
        "unsubscribe garbage": ("/u/not-a-token", 400),
        "unsubscribe non-ascii": ("/u/%C3%A9t%C3%A9.%C3%A9", 400),
        "open for another message": (rewritten(opened, {1: world.sent["bob"]}), 400),
        "open truncated": (opened[:-1], 400),
        "unsubscribe token as open": ("/o/" + unsubscribe.rsplit("/", 1)[1], 400),
        "open expired": (path_of(signer.open_url(sent, alice, expired)), 410),
        "click to another url": (rewritten(click, {4: "https://evil.example/"}), 400),
        "click truncated": (click[:-2], 400),
        "open token as click": ("/c/" + opened.rsplit("/", 1)[1], 400),
        "click expired": (path_of(signer.click_url(sent, alice, SHOP, expired)), 410),
    }


async def test_bad_link_tokens_are_refused_and_change_nothing(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    before = await snapshot(store)

    for case, (path, status) in bad_links(world).items():
        answers = [await client.get(path, follow_redirects=False)]
        if path.startswith("/u/"):
            answers.append(await client.post(path, data=ONE_CLICK))
        for answer in answers:
            assert answer.status_code == status, (case, answer.status_code, answer.text)
            assert answer.headers["content-type"].startswith("text/html"), case
            assert "location" not in answer.headers, case
        assert await snapshot(store) == before, case


async def test_a_link_for_a_customer_who_is_gone_is_404_and_records_nothing(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    unsubscribe, opened = world.unsubscribe("carol"), world.open("carol")
    async with store.transaction() as session:
        await session.execute(delete(Customer).where(Customer.id == world.customers["carol"]))
    before = await snapshot(store)

    assert (await client.get(unsubscribe)).status_code == 404
    assert (await client.post(unsubscribe, data=ONE_CLICK)).status_code == 404
    assert (await client.get(opened)).status_code == 200  # the pixel still shows
    assert await snapshot(store) == before


# --- bodies --------------------------------------------------------------------------------


async def _chunks(total: int, size: int = 256) -> AsyncIterator[bytes]:
    """A body with no Content-Length: sent chunked, counted as it streams in."""
    yield b'{"events": ['
    sent = 12
    while sent < total:
        yield b" " * size
        sent += size
    yield b"]}"


async def test_bodies_over_the_limit_are_413_by_length_or_as_they_stream(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    before = await snapshot(store)
    padded = json.dumps(hard_bounce("bob")).encode() + b" " * MAX_BODY

    by_length = await client.post("/v1/bounces", content=padded, headers=AUTH)
    streamed = await client.post("/v1/bounces", content=_chunks(2 * MAX_BODY), headers=AUTH)
    unsubscribe = await client.post(
        world.unsubscribe("alice"),
        content=b"List-Unsubscribe=One-Click" + b"&x=" + b"y" * MAX_BODY,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    unsubscribe_streamed = await client.post(
        world.unsubscribe("alice"), content=_chunks(2 * MAX_BODY)
    )

    for answer in (by_length, streamed, unsubscribe, unsubscribe_streamed):
        assert answer.status_code == 413
    assert "api.max_body_bytes" in by_length.json()["error"]
    assert "api.max_body_bytes" in streamed.json()["error"]
    assert await snapshot(store) == before
    # Just under the limit is fine.
    small = await client.post("/v1/bounces", content=_chunks(MAX_BODY - 300), headers=AUTH)
    assert small.status_code == 200 and small.json()["received"] == 0


MALFORMED = {
    "not json": (b"{not json", "not valid JSON: Expecting property name"),
    "empty": (b"", "not valid JSON"),
    "not utf-8": (b'{"events": ["\xff\xfe"]}', "not UTF-8"),
    "nested too deeply": (b"[" * 60_000, "nested too deeply"),
    "a number": (b"42", "not a bounce report"),
    "unknown object": (b'{"hello": "world"}', "not a bounce report"),
    "events not a list": (b'{"events": {"type": "bounce"}}', '"events" must be a list'),
    "event not an object": (b'{"events": ["bounce"]}', "events[0] must be an object"),
    "unknown type": (b'{"events": [{"type": "open", "email": "a@b.example"}]}', "events[0].type"),
    "no bounce type": (
        b'{"events": [{"type": "bounce", "email": "a@b.example"}]}',
        'events[0].bounce_type must be "hard" or "soft"',
    ),
    "not an address": (
        b'{"events": [{"type": "complaint", "email": "nobody"}]}',
        "events[0].email must be an e-mail address",
    ),
    "address with a line break": (
        b'{"events": [{"type": "complaint", "email": "a@b.example\\r\\nBcc: x@y.example"}]}',
        "events[0].email",
    ),
    "bad time": (
        b'{"events": [{"type": "complaint", "email": "a@b.example", "occurred_at": "soon"}]}',
        "events[0].occurred_at: cannot read 'soon'",
    ),
    "sns subscription": (b'{"Type": "SubscriptionConfirmation"}', "SubscribeURL"),
    "sns message not json": (b'{"Type": "Notification", "Message": "{"}', "Message is not JSON"),
}


async def test_malformed_bounce_bodies_are_400_with_what_is_wrong(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    before = await snapshot(store)

    for case, (body, message) in MALFORMED.items():
        answer = await client.post("/v1/bounces", content=body, headers=AUTH)
        assert answer.status_code == 400, (case, answer.text)
        assert message in answer.json()["error"], (case, answer.text)
    assert await snapshot(store) == before


async def test_one_bad_event_refuses_the_whole_body(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    body = {
        "events": [
            {"type": "bounce", "email": address("bob"), "bounce_type": "hard"},
            {"type": "bounce", "email": address("carol")},
        ]
    }
    before = await snapshot(store)

    answer = await client.post("/v1/bounces", json=body, headers=AUTH)

    assert answer.status_code == 400 and "events[1].bounce_type" in answer.json()["error"]
    assert await snapshot(store) == before


async def test_in_app_listing_refuses_a_bad_limit(world: World, client: httpx.AsyncClient) -> None:
    for query in ("limit=0", "limit=201", "limit=ten", "limit=-1", "limit="):
        answer = await client.get(f"/v1/customers/alice/messages?{query}", headers=AUTH)
        assert answer.status_code == 400, query
        assert "limit must be" in answer.json()["error"]


async def test_in_app_read_of_a_message_id_that_is_not_a_number_is_404(
    world: World, client: httpx.AsyncClient
) -> None:
    answer = await client.post("/v1/customers/alice/messages/abc/read", headers=AUTH)
    assert answer.status_code == 404


# --- open redirects ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "?url=https://evil.example/",
        "?u=https%3A%2F%2Fevil.example%2F",
        "?next=//evil.example&redirect=https://evil.example",
    ],
)
async def test_a_click_redirects_only_to_its_signed_url_whatever_the_query(
    store: Store, world: World, client: httpx.AsyncClient, query: str
) -> None:
    answer = await client.get(world.click("bob", SHOP) + query, follow_redirects=False)

    assert answer.status_code == 302
    assert answer.headers["location"] == SHOP
    (event,) = await events_of(store, "message_clicked")
    assert event.properties is not None and event.properties["url"] == SHOP


NOT_WEB_ADDRESSES = [
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/path",
    "/relative/path",
    "https:evil.example",
    "http://",
    "https://evil.example\\@shop.example/",
    "https://shop.example/\r\nSet-Cookie: a=b",
    "ftp://files.example/",
    "",
]


async def test_a_signed_url_that_is_not_a_web_address_is_refused(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    before = await snapshot(store)

    for destination in NOT_WEB_ADDRESSES:
        answer = await client.get(world.click("bob", destination), follow_redirects=False)
        assert answer.status_code == 400, destination
        assert "location" not in answer.headers
    assert await snapshot(store) == before


async def test_nothing_after_the_token_names_a_destination(
    store: Store, world: World, client: httpx.AsyncClient
) -> None:
    answer = await client.get(world.click("bob", SHOP) + "/https://evil.example/")
    assert answer.status_code == 404 and "location" not in answer.headers
    assert await events_of(store, "message_clicked") == []


# --- secrets in logs -----------------------------------------------------------------------


async def test_no_secret_reaches_the_log(
    store: Store, api_settings: Settings, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Link tokens, the API token and the link secret stay out of every log line, from the
    app and from uvicorn, over real HTTP and on refused requests too."""
    settings = with_api(
        api_settings, link_secret=SecretStr(LINK_SECRET), host="127.0.0.1", port=free_port()
    )
    caplog.set_level(logging.DEBUG)
    started = asyncio.Event()
    task = asyncio.create_task(serve_api(store, settings, started=started))
    await asyncio.wait_for(started.wait(), timeout=10)
    async with store.transaction() as session:
        signer = await link_signer(session, settings, NOW)
    links = [
        path_of(signer.unsubscribe_url(world.sent["bob"], world.customers["bob"], "email", NOW)),
        path_of(signer.open_url(world.sent["bob"], world.customers["bob"], NOW)),
        path_of(signer.click_url(world.sent["bob"], world.customers["bob"], SHOP, NOW)),
    ]
    tokens = [link.rsplit("/", 1)[1] for link in links]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api.port}") as http:
            assert (await http.get(links[0])).status_code == 200
            assert (await http.post(links[0], data=ONE_CLICK)).status_code == 200
            assert (await http.get(links[1])).status_code == 200
            assert (await http.get(links[2] + "?url=x")).status_code == 302
            assert (await http.get(links[1][:-2])).status_code == 400
            assert (await http.get("/u/" + tokens[1])).status_code == 400
            assert (
                await http.post("/v1/bounces", json=hard_bounce("bob"), headers=AUTH)
            ).is_success
            wrong = {"Authorization": f"Bearer {API_TOKEN[:-1]}"}
            assert (await http.post("/v1/bounces", json={}, headers=wrong)).status_code == 401
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    # Everything logged but the test's own HTTP client (which logs the URLs it requests).
    logged = "\n".join(
        caplog.handler.format(record)
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))
    )
    assert '"GET /u/***" 200' in logged and '"POST /u/***" 200' in logged
    assert '"GET /o/***" 400' in logged and '"POST /v1/bounces" 401' in logged
    for secret in (*tokens, API_TOKEN, API_TOKEN[:-1], LINK_SECRET, "url=x"):
        assert secret not in logged
    # Parts of a token are no safer than the whole.
    for token in tokens:
        payload, mac = token.split(".")
        assert payload[:16] not in logged and mac not in logged
