"""What the link routes read and write: whether a customer still exists, the campaign
behind a message, and the events they record."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.bulk import store_events
from core.message_events import message_event
from core.models import Campaign, Customer, OutboxMessage


async def customer_exists(session: AsyncSession, customer_id: int) -> bool:
    found = await session.execute(select(Customer.id).where(Customer.id == customer_id))
    return found.first() is not None


async def campaign_of(session: AsyncSession, outbox_id: int) -> str | None:
    """The name of the campaign that sent outbox row ``outbox_id``; None if the row is gone."""
    query = (
        select(Campaign.name)
        .join(OutboxMessage, OutboxMessage.campaign_id == Campaign.id)
        .where(OutboxMessage.id == outbox_id)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def record_message_event(
    session: AsyncSession,
    customer_id: int,
    outbox_id: int,
    kind: str,
    now: datetime,
    *,
    source: str,
    extra: Mapping[str, Any] | None = None,
) -> bool:
    """Record a ``kind`` event for the customer, naming the message and its campaign;
    False (nothing recorded) when the customer no longer exists."""
    if not await customer_exists(session, customer_id):
        return False
    properties = {"outbox_id": outbox_id, "campaign": await campaign_of(session, outbox_id)}
    row = message_event(customer_id, kind, now, {**properties, **(extra or {})}, source=source)
    await store_events(session, [row], now)
    return True
