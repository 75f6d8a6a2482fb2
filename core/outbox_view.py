"""The outbox as operators read it: the latest messages with their status, and one message
rendered again exactly as delivery renders it.

Listing stays cheap at tens of millions of rows: without a state it walks the primary key
backwards (the newest rows planned), with one the ``(state, due_at)`` index (latest due
first); either way it stops after ``limit`` rows, and only those are joined to their
campaign and customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import OutgoingMessage
from core import clock
from core.db import Store
from core.delivery import DeliveryWorker
from core.models import Campaign, Customer, OutboxMessage
from core.outbox import SENDABLE_STATES, ClaimedMessage
from core.settings import Settings
from core.templates import Templates

OUTBOX_STATES = (*SENDABLE_STATES, "sent", "failed", "cancelled", "control")
"""Every state an outbox row can be in (see :class:`core.models.OutboxMessage`)."""


@dataclass(frozen=True)
class OutboxEntry:
    """One outbox row with the names an operator knows it by."""

    id: int
    run_id: int
    campaign_id: int
    campaign: str
    customer_id: int
    customer: str
    """The customer's id in the business's systems (``external_id``)."""
    channel: str
    category: str
    variant: str
    state: str
    due_at: datetime
    sent_at: datetime | None
    attempts: int
    error: str | None


@dataclass(frozen=True)
class MessageAsSent:
    """An outbox row and its message as delivery renders it; ``message`` is None when
    delivery would not send it now, with ``withheld`` saying why."""

    entry: OutboxEntry
    message: OutgoingMessage | None
    withheld: str | None
    rendered_at: datetime
    """The moment the links are signed for: when it was sent, else now."""


async def recent_outbox_messages(
    session: AsyncSession, *, state: str | None = None, limit: int = 100
) -> list[OutboxEntry]:
    """The latest ``limit`` messages: newest planned first, or, in ``state``, latest due
    first."""
    order = (
        (OutboxMessage.id.desc(),)
        if state is None
        else (OutboxMessage.due_at.desc(), OutboxMessage.id.desc())
    )
    picked = select(OutboxMessage.id).order_by(*order).limit(limit)
    if state is not None:
        picked = picked.where(OutboxMessage.state == state)
    chosen = picked.subquery()
    query = _entries().join(chosen, chosen.c.id == OutboxMessage.id).order_by(*order)
    return [OutboxEntry(*row) for row in (await session.execute(query)).all()]


async def outbox_entry(session: AsyncSession, outbox_id: int) -> OutboxEntry | None:
    """Outbox row ``outbox_id``, or None when there is none."""
    row = (await session.execute(_entries().where(OutboxMessage.id == outbox_id))).one_or_none()
    return None if row is None else OutboxEntry(*row)


async def message_as_sent(
    store: Store, settings: Settings, templates: Templates, outbox_id: int
) -> MessageAsSent | None:
    """Outbox row ``outbox_id`` rendered by delivery's own code (the customer's data, the
    recommendations, the templates, the Message-ID): a sent message with its links signed
    as of its ``sent_at``, so they are the links that went out. None when there is no
    such row."""
    async with store.reading() as session:
        entry = await outbox_entry(session, outbox_id)
    if entry is None:
        return None
    claimed = ClaimedMessage(
        entry.id,
        entry.run_id,
        entry.campaign_id,
        entry.customer_id,
        entry.channel,
        entry.category,
        entry.variant,
        entry.attempts,
    )
    at = entry.sent_at or clock.now()
    worker = DeliveryWorker(store, settings, {}, templates)
    try:
        ready, withheld = await worker.prepare(entry.channel, [claimed], at)
    finally:
        await worker.close()
    if ready:
        return MessageAsSent(entry, ready[0], None, at)
    return MessageAsSent(entry, None, withheld[0].reason, at)


def _entries() -> Select[*tuple[Any, ...]]:
    return (
        select(
            OutboxMessage.id,
            OutboxMessage.run_id,
            OutboxMessage.campaign_id,
            Campaign.name,
            OutboxMessage.customer_id,
            Customer.external_id,
            OutboxMessage.channel,
            OutboxMessage.category,
            OutboxMessage.variant,
            OutboxMessage.state,
            OutboxMessage.due_at,
            OutboxMessage.sent_at,
            OutboxMessage.attempts,
            OutboxMessage.error,
        )
        .join(Campaign, Campaign.id == OutboxMessage.campaign_id)
        .join(Customer, Customer.id == OutboxMessage.customer_id)
    )
