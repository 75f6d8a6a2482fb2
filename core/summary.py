"""A short picture of what the store holds, for ``cadence demo`` and ``cadence db status``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Customer, CustomerRollup, Event


@dataclass(frozen=True)
class StoreSummary:
    customers: int
    purchasers: int
    bought_last_90d: int
    active_last_30d: int
    revenue_total: float
    events: int
    events_by_type: list[tuple[str, int]]
    first_event: datetime | None
    last_event: datetime | None


async def summarise_store(session: AsyncSession, now: datetime) -> StoreSummary:
    """Counts that show at a glance whether data is there and looks alive."""
    rollups = CustomerRollup
    customers = (await session.execute(select(func.count()).select_from(Customer))).scalar_one()
    purchasers, revenue, recent_buyers, recent_active = (
        await session.execute(
            select(
                func.count(rollups.first_purchase_at),
                func.coalesce(func.sum(rollups.revenue_total), 0),
                func.count(rollups.last_purchase_at).filter(
                    rollups.last_purchase_at >= now - timedelta(days=90)
                ),
                func.count(rollups.last_event_at).filter(
                    rollups.last_event_at >= now - timedelta(days=30)
                ),
            )
        )
    ).one()
    by_type = await session.execute(
        select(Event.type, func.count()).group_by(Event.type).order_by(func.count().desc())
    )
    events_by_type = [(kind, int(count)) for kind, count in by_type]
    first, last = (
        await session.execute(select(func.min(Event.occurred_at), func.max(Event.occurred_at)))
    ).one()
    return StoreSummary(
        customers=int(customers),
        purchasers=int(purchasers),
        bought_last_90d=int(recent_buyers),
        active_last_30d=int(recent_active),
        revenue_total=float(revenue),
        events=sum(count for _, count in events_by_type),
        events_by_type=events_by_type,
        first_event=first,
        last_event=last,
    )
