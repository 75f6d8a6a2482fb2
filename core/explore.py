"""Explorer queries: what distinguishes the stages, for operators deciding what to send.

Each function is one or two set-based queries over the rollups, stages and
recent events, returning plain rows for the CLI and the console.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import event_types
from core.db.dialect import age_in_days, backend_of, day_number
from core.models import Customer, CustomerRollup, CustomerStage, Event


@dataclass(frozen=True)
class StageProfile:
    """How the customers of one stage behave."""

    stage: str
    customers: int
    average_active_days_30d: float
    """Distinct days with any activity in the last 30 days, averaged over the stage."""
    average_days_to_first_purchase: float | None
    """From registration to the first purchase, over the stage's buyers."""


@dataclass(frozen=True)
class CategoryShare:
    category: str
    customers: int
    share: float
    """Of the customers who bought anything in the window."""


@dataclass(frozen=True)
class BehaviourRetention:
    """Whether doing something in the first 30 days goes with not being inactive now."""

    event_type: str
    customers_with: int
    retained_with: float
    retained_without: float

    @property
    def lift(self) -> float | None:
        return self.retained_with / self.retained_without if self.retained_without else None


async def stage_profiles(session: AsyncSession, now: datetime) -> list[StageProfile]:
    """Per stage: size, average active days in the last 30 days and time to first purchase."""
    backend = backend_of(session)
    active_days = (
        select(
            Event.customer_id,
            func.count(distinct(day_number(backend, Event.occurred_at))).label("days"),
        )
        .where(Event.occurred_at > now - timedelta(days=30), Event.occurred_at <= now)
        .group_by(Event.customer_id)
        .subquery()
    )
    to_first_purchase = age_in_days(backend, Customer.registered_at, now) - age_in_days(
        backend, CustomerRollup.first_purchase_at, now
    )
    rows = await session.execute(
        select(
            CustomerStage.stage,
            func.count(),
            func.avg(func.coalesce(active_days.c.days, 0)),
            func.avg(to_first_purchase),
        )
        .select_from(CustomerStage)
        .join(Customer, Customer.id == CustomerStage.customer_id)
        .outerjoin(CustomerRollup, CustomerRollup.customer_id == CustomerStage.customer_id)
        .outerjoin(active_days, active_days.c.customer_id == CustomerStage.customer_id)
        .group_by(CustomerStage.stage)
        .order_by(CustomerStage.stage)
    )
    return [
        StageProfile(
            stage,
            count,
            float(days or 0),
            None if to_purchase is None else float(to_purchase),
        )
        for stage, count, days, to_purchase in rows
    ]


async def category_shares(
    session: AsyncSession, now: datetime, *, days: int = 90
) -> list[CategoryShare]:
    """Share of the window's buyers who bought in each product category."""
    window = and_(
        Event.type == event_types.PURCHASE,
        Event.occurred_at > now - timedelta(days=days),
        Event.occurred_at <= now,
    )
    buyers = (
        await session.execute(select(func.count(distinct(Event.customer_id))).where(window))
    ).scalar_one()
    category = Event.properties["category"].as_string()
    rows = await session.execute(
        select(category, func.count(distinct(Event.customer_id)))
        .where(window, category.is_not(None))
        .group_by(category)
        .order_by(func.count(distinct(Event.customer_id)).desc())
    )
    return [CategoryShare(name, count, count / buyers if buyers else 0.0) for name, count in rows]


async def behaviours_that_retain(
    session: AsyncSession, now: datetime, *, inactive_stage: str, limit: int = 10
) -> list[BehaviourRetention]:
    """For each kind of event: the share not inactive now among customers who did it in their
    first 30 days, against those who did not. A correlation to explore, not a cause."""
    backend = backend_of(session)
    early = age_in_days(backend, Customer.registered_at, now) - age_in_days(
        backend, Event.occurred_at, now
    )
    did = (
        select(Event.type, Event.customer_id)
        .join(Customer, Customer.id == Event.customer_id)
        .where(Event.occurred_at <= now, early >= 0, early <= 30)
        .distinct()
        .subquery()
    )
    retained = func.sum(case((CustomerStage.stage != inactive_stage, 1), else_=0))
    totals = (await session.execute(select(func.count(), retained))).one()
    everyone, everyone_retained = int(totals[0]), int(totals[1] or 0)
    rows = await session.execute(
        select(did.c.type, func.count(), retained)
        .join(CustomerStage, CustomerStage.customer_id == did.c.customer_id)
        .group_by(did.c.type)
        .order_by(func.count().desc())
        .limit(limit)
    )
    results = []
    for kind, count, kept in rows:
        kept = int(kept or 0)
        others, others_kept = everyone - count, everyone_retained - kept
        results.append(
            BehaviourRetention(
                kind,
                count,
                kept / count if count else 0.0,
                others_kept / others if others else 0.0,
            )
        )
    return results
