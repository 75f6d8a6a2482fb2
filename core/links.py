"""Signed links in messages: one-click unsubscribe, the open pixel and tracked clicks.

A link carries everything the HTTP API needs (which message, which customer,
for clicks the destination) in a token signed with HMAC-SHA256, so the API
needs no lookup to trust it and a changed byte is refused. A click redirects
only to the URL signed into its token: there is no open redirect to abuse.
The key is ``api.link_secret`` when set, otherwise one generated on first use
and kept in the store, which every node shares.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.dialect import backend_of, upsert
from core.errors import CadenceError
from core.models import SigningKey
from core.settings import Settings

LinkKind = Literal["unsubscribe", "open", "click"]
_KIND_CODES: dict[LinkKind, str] = {"unsubscribe": "u", "open": "o", "click": "c"}
_KEY_NAME = "links"
_MAC_BYTES = 16  # 128 bits: far beyond guessing, and keeps links short
_SEPARATOR = "|"


class LinkError(CadenceError):
    """A link token that is malformed, tampered with or expired."""


class LinkExpiredError(LinkError):
    """A genuine link token whose time is up."""


@dataclass(frozen=True, slots=True)
class LinkClaims:
    """What a verified token says."""

    kind: LinkKind
    outbox_id: int
    customer_id: int
    expires_at: int
    """Unix seconds."""
    detail: str | None
    """The channel for unsubscribe links, the destination URL for clicks."""


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Makes and checks the signed links of messages."""

    def __init__(self, key: bytes, public_url: str, ttl: timedelta) -> None:
        self._key = key
        self.public_url = public_url.rstrip("/")
        self.ttl = ttl

    def token(
        self,
        kind: LinkKind,
        outbox_id: int,
        customer_id: int,
        now: datetime,
        detail: str | None = None,
    ) -> str:
        # Every message carries several links, so a token is a few joined fields, not
        # JSON: the detail comes last and may hold the separator (a URL may).
        expires = int((now + self.ttl).timestamp())
        fields = (_KIND_CODES[kind], str(outbox_id), str(customer_id), str(expires), detail or "")
        payload = _SEPARATOR.join(fields).encode()
        return f"{_encode(payload)}.{_encode(self._mac(payload))}"

    def unsubscribe_url(self, outbox_id: int, customer_id: int, channel: str, now: datetime) -> str:
        return (
            f"{self.public_url}/u/{self.token('unsubscribe', outbox_id, customer_id, now, channel)}"
        )

    def open_url(self, outbox_id: int, customer_id: int, now: datetime) -> str:
        return f"{self.public_url}/o/{self.token('open', outbox_id, customer_id, now)}"

    def click_url(self, outbox_id: int, customer_id: int, url: str, now: datetime) -> str:
        return f"{self.public_url}/c/{self.token('click', outbox_id, customer_id, now, url)}"

    def verify(self, token: str, kind: LinkKind, now: datetime) -> LinkClaims:
        """The claims of a genuine, unexpired ``kind`` token; :class:`LinkError` otherwise."""
        payload_text, _, mac_text = token.partition(".")
        try:
            payload, mac = _decode(payload_text), _decode(mac_text)
        except (ValueError, UnicodeEncodeError):
            raise LinkError("malformed link") from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise LinkError("this link was altered or is not one of ours")
        code, outbox_id, customer_id, expires, detail = payload.decode().split(_SEPARATOR, 4)
        if code != _KIND_CODES[kind]:
            raise LinkError(f"not a {kind} link")
        if now.timestamp() > int(expires):
            raise LinkExpiredError("this link has expired")
        return LinkClaims(kind, int(outbox_id), int(customer_id), int(expires), detail or None)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.digest(self._key, payload, "sha256")[:_MAC_BYTES]


async def link_signer(session: AsyncSession, settings: Settings, now: datetime) -> LinkSigner:
    """The signer every node uses."""
    api = settings.api
    key = await link_key(session, settings, now)
    return LinkSigner(key, api.public_url, timedelta(days=api.link_ttl_days))


async def link_key(session: AsyncSession, settings: Settings, now: datetime) -> bytes:
    """The key that signs links: the configured secret, or the store's shared key."""
    if settings.api.link_secret is not None:
        return settings.api.link_secret.get_secret_value().encode()
    return await shared_key(session, _KEY_NAME, now)


async def shared_key(session: AsyncSession, name: str, now: datetime) -> bytes:
    """The store's secret ``name``, generated on first use and then the same for every node."""
    query = select(SigningKey.secret).where(SigningKey.name == name)
    secret = (await session.execute(query)).scalar_one_or_none()
    if secret is None:
        # Two nodes may race to create it: the first insert wins and both read it back.
        insert = upsert(backend_of(session), SigningKey.__table__).values(
            name=name, secret=secrets.token_urlsafe(48), created_at=now
        )
        await session.execute(insert.on_conflict_do_nothing())
        secret = (await session.execute(query)).scalar_one()
    return secret.encode()
