"""The SMS channel: one POST per message to an HTTP gateway.

Gateways differ in what they call things, so the body's shape is
configured: JSON or a form, and the names of the recipient, text and
sender fields. Authentication is HTTP basic (``username``/``password``) or
a bearer ``token``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import urlencode

import httpx

from channels.base import OutgoingMessage, Report, SendOutcome
from channels.http import HttpPost, HttpPoster
from channels.outcomes import Outcomes
from core.errors import ConfigError
from core.settings import SmsSettings

_CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded"}


class SmsChannel:
    """Sends each message's text to ``settings.url``, ``settings.concurrency`` at a time."""

    name = "sms"

    def __init__(self, settings: SmsSettings) -> None:
        self.settings = settings
        auth: httpx.Auth | None = None
        headers: dict[str, str] = {}
        if settings.token is not None:
            headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
        elif settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else ""
            auth = httpx.BasicAuth(settings.username, password)
        self._poster = HttpPoster(
            settings.timeout_seconds, settings.concurrency, auth=auth, headers=headers
        )

    async def open(self) -> None:
        self._url()
        self._poster.open()

    async def send(
        self, batch: Sequence[OutgoingMessage], report: Report | None = None
    ) -> list[SendOutcome]:
        url = self._url()
        outcomes = Outcomes(report)
        posts: list[HttpPost] = []
        for message in batch:
            if message.address:
                posts.append(self._post(message.outbox_id, message.address, message.text))
            else:
                await outcomes.add(SendOutcome.failed(message.outbox_id, "no phone number"))
        await self._poster.post_all(url, posts, outcomes)
        return outcomes.all

    async def close(self) -> None:
        await self._poster.close()

    def _url(self) -> str:
        if not self.settings.url:
            raise ConfigError(
                "the SMS channel has no gateway: set channels.sms.url in the settings file "
                "(or CADENCE_CHANNELS__SMS__URL) to the gateway's endpoint"
            )
        return self.settings.url

    def _post(self, outbox_id: int, phone: str, text: str) -> HttpPost:
        fields = self.settings.fields
        body = {fields.get("to", "to"): phone, fields.get("text", "text"): text}
        if self.settings.sender is not None:
            body[fields.get("from", "from")] = self.settings.sender
        shape = self.settings.format
        content = json.dumps(body).encode() if shape == "json" else urlencode(body).encode()
        return HttpPost(outbox_id, content, _CONTENT_TYPES[shape])
