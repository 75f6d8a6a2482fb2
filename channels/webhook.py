"""The webhook channel: each message POSTed as JSON to one URL, signed.

The receiver checks ``X-Cadence-Signature: t=<unix seconds>,v1=<hex>``: the
HMAC-SHA256, keyed with the shared secret, of the timestamp, a dot and the
exact body. The timestamp lets it refuse old requests replayed later.
``X-Cadence-Message-Id`` carries the Message-ID, the same on every attempt,
so a receiver can drop a message it already has.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence

from channels.base import OutgoingMessage, Report, SendOutcome
from channels.http import HttpPost, HttpPoster
from channels.outcomes import Outcomes
from core import clock
from core.errors import ConfigError
from core.settings import WebhookSettings

SIGNATURE_HEADER = "X-Cadence-Signature"
MESSAGE_ID_HEADER = "X-Cadence-Message-Id"


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Cadence-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def payload(message: OutgoingMessage) -> dict[str, object]:
    """What the receiver gets for one message."""
    return {
        "outbox_id": message.outbox_id,
        "message_id": message.message_id,
        "customer_ref": message.customer_ref,
        "campaign": message.campaign,
        "variant": message.variant,
        "category": message.category,
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
    }


class WebhookChannel:
    """POSTs each message to ``settings.url``, ``settings.concurrency`` at a time."""

    name = "webhook"

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self._poster = HttpPoster(settings.timeout_seconds, settings.concurrency)

    async def open(self) -> None:
        self._target()
        self._poster.open()

    async def send(
        self, batch: Sequence[OutgoingMessage], report: Report | None = None
    ) -> list[SendOutcome]:
        url, secret = self._target()
        timestamp = int(clock.now().timestamp())
        outcomes = Outcomes(report)
        await self._poster.post_all(
            url, [self._post(message, secret, timestamp) for message in batch], outcomes
        )
        return outcomes.all

    async def close(self) -> None:
        await self._poster.close()

    def _target(self) -> tuple[str, bytes]:
        url = self.settings.url or ""
        secret = self.settings.secret.get_secret_value() if self.settings.secret else ""
        missing = [
            f"channels.webhook.{name}"
            for name, value in (("url", url), ("secret", secret))
            if not value
        ]
        if missing:
            raise ConfigError(
                f"the webhook channel needs {' and '.join(missing)}: set the receiver's URL and "
                "a shared secret that signs each request (e.g. CADENCE_CHANNELS__WEBHOOK__SECRET)"
            )
        return url, secret.encode()

    @staticmethod
    def _post(message: OutgoingMessage, secret: bytes, timestamp: int) -> HttpPost:
        body = json.dumps(payload(message), separators=(",", ":")).encode()
        headers = {
            SIGNATURE_HEADER: signature(secret, timestamp, body),
            MESSAGE_ID_HEADER: message.message_id,
        }
        return HttpPost(message.outbox_id, body, "application/json", headers)
