"""Who must not be contacted: suppressed addresses and withdrawn consent.

Unsubscribing, hard bounces and complaints all end here, whichever way they
arrive (the one-click link, a bounce mailbox, a provider's webhook, an SMTP
5xx), so the planner and the delivery workers see them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.dialect import backend_of, upsert
from core.models import Customer, Suppression
from core.policy.channels import channel_rule

UNSUBSCRIBED = "unsubscribed"
HARD_BOUNCE = "hard_bounce"
COMPLAINT = "complaint"

_CONSENT_COLUMNS = {"email": "consent_email", "file": "consent_email", "sms": "consent_sms"}


async def suppress_addresses(
    session: AsyncSession,
    channel: str,
    addresses: Iterable[str],
    reason: str,
    source: str,
    now: datetime,
) -> int:
    """Suppress ``addresses`` on ``channel`` (an address already suppressed keeps its first
    reason); returns how many were new."""
    rows = [
        {
            "channel": channel,
            "address": address,
            "reason": reason,
            "source": source,
            "created_at": now,
        }
        for address in dict.fromkeys(addresses)
        if address
    ]
    if not rows:
        return 0
    insert = upsert(backend_of(session), Suppression.__table__).on_conflict_do_nothing()
    result = await session.execute(insert.returning(Suppression.id), rows)
    return len(result.all())


async def unsubscribe_customer(
    session: AsyncSession, customer_id: int, channel: str, source: str, now: datetime
) -> bool:
    """Withdraw the customer's marketing consent on ``channel`` and suppress the address it
    uses; True if the customer was subscribed until now."""
    rule = channel_rule(channel)
    if rule.address is None or rule.suppression_channel is None:
        return False
    address = (
        await session.execute(select(rule.address).where(Customer.id == customer_id))
    ).scalar_one_or_none()
    changed = False
    consent_column = _CONSENT_COLUMNS.get(channel)
    if consent_column is not None:
        withdrawn = await session.execute(
            update(Customer)
            .where(Customer.id == customer_id, getattr(Customer, consent_column).is_not(False))
            .values({consent_column: False, "updated_at": now})
            .returning(Customer.id)
        )
        changed = withdrawn.first() is not None
    if address:
        added = await suppress_addresses(
            session, rule.suppression_channel, [address], UNSUBSCRIBED, source, now
        )
        changed = changed or added > 0
    return changed
