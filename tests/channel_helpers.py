"""What the channel tests share: a message to send, one batch through a channel, and a
loopback port where nothing listens."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from channels.base import Channel, OutgoingMessage, SendOutcome

TEXT = "Hello Zoë,\n\nyour spring offer is ready.\n.\nA line with only a dot, above.\n"
HTML = "<p>Hello <b>Zoë</b>,</p>\n<p>your spring offer is ready.</p>\n"
UNSUBSCRIBE = "https://cadence.example/u/eyJ0b2tlbiI6MX0.c2lnbmF0dXJl"


def outgoing(outbox_id: int, **fields: Any) -> OutgoingMessage:
    """A marketing e-mail for customer ``outbox_id``; ``fields`` change any of it."""
    values: dict[str, Any] = {
        "outbox_id": outbox_id,
        "message_id": f"<cadence.{outbox_id}@cadence.example>",
        "customer_id": outbox_id,
        "customer_ref": f"c-{outbox_id}",
        "address": f"customer{outbox_id}@example.com",
        "name": f"Customer {outbox_id}",
        "subject": "Your spring offer",
        "text": TEXT,
        "html": HTML,
        "campaign": "spring",
        "variant": "a",
        "category": "marketing",
        "unsubscribe_url": UNSUBSCRIBE,
    }
    values.update(fields)
    return OutgoingMessage(**values)


async def send_through(channel: Channel, batch: Sequence[OutgoingMessage]) -> list[SendOutcome]:
    """Open ``channel``, send ``batch``, close it; the outcomes in outbox order."""
    await channel.open()
    try:
        return sorted(await channel.send(batch), key=lambda outcome: outcome.outbox_id)
    finally:
        await channel.close()


def unused_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
