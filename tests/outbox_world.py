"""Outbox rows written straight to the store, for delivery tests: a run of a campaign with
one queued message per customer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select

from core.db import Store
from core.models import CampaignRun, OutboxMessage


async def queue_messages(
    store: Store,
    campaign_id: int,
    customer_ids: Sequence[int],
    now: datetime,
    *,
    channel: str = "email",
    category: str = "marketing",
    variant: str = "offer_a",
    run_key: str = "test-run",
    due_at: datetime | None = None,
) -> list[int]:
    """A planned run of ``campaign_id`` with a queued message for each customer; the
    messages' ids, in customer order."""
    async with store.transaction() as session:
        run = CampaignRun(
            campaign_id=campaign_id,
            run_key=run_key,
            occasion="manual",
            status="planned",
            due_at=now,
            planned_at=now,
            targeted=len(customer_ids),
            queued=len(customer_ids),
            outcomes={},
        )
        session.add(run)
        await session.flush()
        if customer_ids:
            await session.execute(
                insert(OutboxMessage),
                [
                    {
                        "run_id": run.id,
                        "campaign_id": campaign_id,
                        "customer_id": customer_id,
                        "channel": channel,
                        "category": category,
                        "variant": variant,
                        "state": "queued",
                        "due_at": due_at or now,
                        "created_at": now,
                    }
                    for customer_id in customer_ids
                ],
            )
        ids = await session.execute(
            select(OutboxMessage.id)
            .where(OutboxMessage.run_id == run.id)
            .order_by(OutboxMessage.customer_id)
        )
        return list(ids.scalars())


async def outbox_states(store: Store) -> dict[int, tuple[str, str | None]]:
    """Every message's state and error, by id."""
    async with store.reading() as session:
        rows = await session.execute(
            select(OutboxMessage.id, OutboxMessage.state, OutboxMessage.error)
        )
        return {row_id: (state, error) for row_id, state, error in rows}
