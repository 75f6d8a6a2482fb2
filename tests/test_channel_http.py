"""The SMS and webhook channels against a real local HTTP server (Starlette under uvicorn):
bodies, authentication, the webhook signature, and what each answer means."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from datetime import timedelta
from email.utils import format_datetime

import pytest
from pydantic import SecretStr

from channels.base import OutgoingMessage, SendOutcome
from channels.sms import SmsChannel
from channels.webhook import WebhookChannel
from core import clock
from core.errors import ConfigError
from core.settings import SmsSettings, WebhookSettings
from tests.channel_helpers import outgoing, send_through, unused_port
from tests.conftest import NOW
from tests.http_receiver import Answer, Receiver, receiver

__all__ = ["receiver"]


def message(outbox_id: int, address: str | None = "+351910000001") -> OutgoingMessage:
    return outgoing(
        outbox_id,
        address=address,
        text=f"Olá Zoë, offer {outbox_id} is yours",
        html="<p>Olá</p>" if outbox_id % 2 else None,
    )


def phone(number: int) -> str:
    return f"+35191000{number:04d}"


async def send_sms(settings: SmsSettings, *batch: OutgoingMessage) -> list[SendOutcome]:
    return await send_through(SmsChannel(settings), batch)


async def test_sms_posts_json_with_the_configured_fields_and_a_bearer_token(
    receiver: Receiver,
) -> None:
    settings = SmsSettings(
        url=receiver.url,
        fields={"to": "destination", "text": "body", "from": "originator"},
        sender="Cadence",
        token=SecretStr("t0ken"),
    )
    outcomes = await send_sms(settings, message(1, phone(1)), message(2, phone(2)))

    assert outcomes == [SendOutcome.sent(1), SendOutcome.sent(2)]
    assert sorted(r.fields()["destination"] for r in receiver.received) == [phone(1), phone(2)]
    first = next(r for r in receiver.received if r.fields()["destination"] == phone(1))
    assert first.fields() == {
        "destination": phone(1),
        "body": "Olá Zoë, offer 1 is yours",
        "originator": "Cadence",
    }
    assert first.headers["authorization"] == "Bearer t0ken"


async def test_sms_posts_a_form_with_basic_authentication(receiver: Receiver) -> None:
    settings = SmsSettings(
        url=receiver.url, format="form", username="acme", password=SecretStr("s3cret")
    )
    assert await send_sms(settings, message(1)) == [SendOutcome.sent(1)]

    [request] = receiver.received
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.fields() == {"to": "+351910000001", "text": "Olá Zoë, offer 1 is yours"}
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"acme:s3cret").decode()


async def test_sms_gateway_answers_become_outcomes(
    receiver: Receiver, frozen_clock: clock.FixedClock
) -> None:
    later = format_datetime(NOW + timedelta(minutes=2), usegmt=True)
    answers = {
        1: Answer(200),
        2: Answer(429, "slow down", {"Retry-After": "30"}),
        3: Answer(503, "maintenance", {"Retry-After": later}),
        4: Answer(500, ""),
        5: Answer(400, "invalid\nnumber"),
        6: Answer(401, "bad credentials"),
    }
    receiver.answer = lambda received: answers[int(received.fields()["to"][-4:])]

    outcomes = await send_sms(
        SmsSettings(url=receiver.url), *(message(n, phone(n)) for n in answers)
    )

    assert outcomes == [
        SendOutcome.sent(1),
        SendOutcome.retry(2, "HTTP 429 Too Many Requests: slow down", 30.0),
        SendOutcome.retry(3, "HTTP 503 Service Unavailable: maintenance", 120.0),
        SendOutcome.retry(4, "HTTP 500 Internal Server Error"),
        SendOutcome.failed(5, "HTTP 400 Bad Request: invalid number"),
        SendOutcome.failed(6, "HTTP 401 Unauthorized: bad credentials"),
    ]


async def test_an_sms_gateway_that_does_not_answer_in_time_means_retry(
    receiver: Receiver,
) -> None:
    receiver.answer = lambda _: Answer(delay=0.5)

    [outcome] = await send_sms(SmsSettings(url=receiver.url, timeout_seconds=0.1), message(1))

    assert outcome.status == "retry"
    assert outcome.reason is not None and outcome.reason.startswith(
        f"no answer from {receiver.url}"
    )


async def test_an_unreachable_sms_gateway_means_retry() -> None:
    url = f"http://127.0.0.1:{unused_port()}/send"

    outcomes = await send_sms(SmsSettings(url=url), message(1), message(2))

    assert [outcome.status for outcome in outcomes] == ["retry", "retry"]
    assert all(f"cannot reach {url}: ConnectError" in str(o.reason) for o in outcomes)


async def test_an_sms_without_a_phone_number_fails_alone(receiver: Receiver) -> None:
    outcomes = await send_sms(SmsSettings(url=receiver.url), message(1, None), message(2))

    assert outcomes == [SendOutcome.failed(1, "no phone number"), SendOutcome.sent(2)]
    assert len(receiver.received) == 1


async def test_sms_keeps_to_its_concurrency_and_reports_before_the_slot_goes_on(
    receiver: Receiver,
) -> None:
    receiver.answer = lambda _: Answer(delay=0.02)
    channel = SmsChannel(SmsSettings(url=receiver.url, concurrency=1))
    requests_at_report: list[int] = []

    async def report(outcome: SendOutcome) -> None:
        await asyncio.sleep(0.01)
        requests_at_report.append(len(receiver.received))

    await channel.open()
    outcomes = await channel.send([message(n, phone(n)) for n in range(5)], report)
    await channel.close()

    assert len(outcomes) == 5
    assert requests_at_report == [1, 2, 3, 4, 5]

    receiver.most_in_flight = 0
    channel = SmsChannel(SmsSettings(url=receiver.url, concurrency=3))
    await channel.open()
    await channel.send([message(n, phone(n)) for n in range(9)])
    await channel.close()
    assert receiver.most_in_flight == 3


async def test_sms_without_a_gateway_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"set channels\.sms\.url"):
        await SmsChannel(SmsSettings()).open()


SECRET = "whsec-0123456789"


async def send_webhook(settings: WebhookSettings, *batch: OutgoingMessage) -> list[SendOutcome]:
    return await send_through(WebhookChannel(settings), batch)


async def test_webhook_posts_signed_json(
    receiver: Receiver, frozen_clock: clock.FixedClock
) -> None:
    settings = WebhookSettings(url=receiver.url, secret=SecretStr(SECRET))
    assert await send_webhook(settings, message(1), message(2)) == [
        SendOutcome.sent(1),
        SendOutcome.sent(2),
    ]

    for request in receiver.received:
        timestamp, _, mac = request.headers["x-cadence-signature"].partition(",")
        assert timestamp == f"t={int(NOW.timestamp())}"
        signed = timestamp.removeprefix("t=").encode() + b"." + request.body
        expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert mac == f"v1={expected}"
        assert request.headers["content-type"] == "application/json"
    first = next(r for r in receiver.received if r.fields()["outbox_id"] == 1)
    assert first.headers["x-cadence-message-id"] == "<cadence.1@cadence.example>"
    assert first.fields() == {
        "outbox_id": 1,
        "message_id": "<cadence.1@cadence.example>",
        "customer_ref": "c-1",
        "campaign": "spring",
        "variant": "a",
        "category": "marketing",
        "subject": "Your spring offer",
        "text": "Olá Zoë, offer 1 is yours",
        "html": "<p>Olá</p>",
    }


async def test_a_tampered_webhook_body_fails_the_signature(
    receiver: Receiver, frozen_clock: clock.FixedClock
) -> None:
    await send_webhook(WebhookSettings(url=receiver.url, secret=SecretStr(SECRET)), message(1))

    [request] = receiver.received
    tampered = request.body.replace(b"spring", b"autumn")
    timestamp = request.headers["x-cadence-signature"].split(",")[0].removeprefix("t=")
    mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + tampered, hashlib.sha256)
    assert f"v1={mac.hexdigest()}" not in request.headers["x-cadence-signature"]


async def test_webhook_answers_and_timeouts_become_outcomes(receiver: Receiver) -> None:
    answers = {
        1: Answer(204, ""),
        2: Answer(500, "boom"),
        3: Answer(429, "", {"Retry-After": "5"}),
        4: Answer(410, "gone"),
        5: Answer(delay=0.5),
    }
    receiver.answer = lambda received: answers[received.fields()["outbox_id"]]
    settings = WebhookSettings(url=receiver.url, secret=SecretStr(SECRET), timeout_seconds=0.2)

    outcomes = await send_webhook(settings, *(message(n) for n in answers))

    assert outcomes[:4] == [
        SendOutcome.sent(1),
        SendOutcome.retry(2, "HTTP 500 Internal Server Error: boom"),
        SendOutcome.retry(3, "HTTP 429 Too Many Requests", 5.0),
        SendOutcome.failed(4, "HTTP 410 Gone: gone"),
    ]
    assert outcomes[4].status == "retry"
    assert str(outcomes[4].reason).startswith("no answer from")


@pytest.mark.parametrize(
    ("settings", "missing"),
    [
        (WebhookSettings(), "channels.webhook.url and channels.webhook.secret"),
        (WebhookSettings(url="http://127.0.0.1/x"), "channels.webhook.secret"),
        (WebhookSettings(secret=SecretStr(SECRET)), "channels.webhook.url"),
    ],
)
async def test_webhook_without_url_or_secret_is_a_configuration_error(
    settings: WebhookSettings, missing: str
) -> None:
    with pytest.raises(ConfigError, match=f"needs {missing}:"):
        await WebhookChannel(settings).open()
