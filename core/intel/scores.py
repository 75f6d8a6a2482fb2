"""Batch scores: RFM quintiles, engagement and lead scores, windowed purchase totals.

Everything here is one INSERT ... SELECT ... ON CONFLICT into
``customer_scores``, whatever the number of customers: RFM ranks the rollups
with ``ntile(5)`` windows, and one pass over the last year's events (read straight
through: the year holds most of them) yields the windowed totals and both decayed
scores. Every customer gets a row, so rules see zeros rather than nulls for
those who did nothing.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import event_types
from core.db.dialect import age_in_days, backend_of, rowcount, serialize_writers, upsert
from core.db.sqlfunctions import Likely
from core.db.types import UtcDateTime
from core.models import Customer, CustomerRollup, CustomerScore, Event
from core.program.model import DecaySpec, ScoresSpec

PURCHASE_WINDOWS = (30, 90, 365)
REVENUE_WINDOWS = (90, 365)
QUINTILES = 5


async def refresh_scores(session: AsyncSession, scores: ScoresSpec, now: datetime) -> int:
    """Recompute every customer's scores as of ``now``; returns the number of customers."""
    await serialize_writers(session, "scores")
    backend = backend_of(session)
    activity = _activity(backend, scores, now).subquery("activity")
    rfm = _rfm().subquery("rfm")
    customers = Customer.__table__
    columns: dict[str, Any] = {
        "customer_id": customers.c.id,
        "recency_score": rfm.c.recency_score,
        "frequency_score": rfm.c.frequency_score,
        "monetary_score": rfm.c.monetary_score,
        "rfm_score": rfm.c.recency_score * 100 + rfm.c.frequency_score * 10 + rfm.c.monetary_score,
        **{
            name: func.coalesce(activity.c[name], 0)
            for name in (
                "engagement_score",
                "lead_score",
                *(f"purchases_{days}d" for days in PURCHASE_WINDOWS),
                *(f"revenue_{days}d" for days in REVENUE_WINDOWS),
            )
        },
        "refreshed_at": literal(now, UtcDateTime()),
    }
    source = (
        select(*(value.label(name) for name, value in columns.items()))
        .select_from(
            customers.outerjoin(rfm, rfm.c.customer_id == customers.c.id).outerjoin(
                activity, activity.c.customer_id == customers.c.id
            )
        )
        .where(customers.c.id.is_not(None))  # SQLite's upsert needs a WHERE after a join
    )
    statement = upsert(backend, CustomerScore.__table__).from_select(list(columns), source)
    result = await session.execute(
        statement.on_conflict_do_update(
            index_elements=["customer_id"],
            set_={name: statement.excluded[name] for name in list(columns)[1:]},
        )
    )
    return rowcount(result)


def _rfm() -> Select[Any]:
    """Quintiles of recency, frequency and monetary value among customers who bought."""
    r = CustomerRollup
    return select(
        r.customer_id,
        func.ntile(QUINTILES)
        .over(order_by=(r.last_purchase_at, r.customer_id))
        .label("recency_score"),
        func.ntile(QUINTILES)
        .over(order_by=(r.purchase_count, r.customer_id))
        .label("frequency_score"),
        func.ntile(QUINTILES)
        .over(order_by=(r.revenue_total, r.customer_id))
        .label("monetary_score"),
    ).where(r.purchase_count > 0)


def _activity(backend: Any, scores: ScoresSpec, now: datetime) -> Select[Any]:
    """Per customer, over the events of the longest window: windowed totals and decayed scores.

    Summed in two steps: per customer and event type while the events are read in the order
    of the (type, customer) index, which needs no sort, then per customer over those few
    rows, where each type's points apply. Grouping a year of events by customer alone
    sorted every event (the simulation's 1.3M: 1.16 -> 0.87 s of SQLite's CPU); sums differ only
    in the last bit, by summation order.
    """
    longest = max(*PURCHASE_WINDOWS, scores.engagement.window_days, scores.lead.window_days)
    age = age_in_days(backend, Event.occurred_at, now)

    def within(days: int) -> Any:
        return Event.occurred_at > now - timedelta(days=days)

    decays = {"engagement_score": scores.engagement, "lead_score": scores.lead}
    purchase = Event.type == event_types.PURCHASE
    per_type = (
        select(
            Event.customer_id,
            Event.type,
            # Only the events that count are weighed: exp() is most of the work.
            *(
                func.sum(
                    case(
                        (
                            Event.type.in_(spec.points) & within(spec.window_days),
                            _fading(spec, age),
                        ),
                        else_=0.0,
                    )
                ).label(name)
                for name, spec in decays.items()
                if spec.points
            ),
            *(
                func.sum(case((purchase & within(days), 1), else_=0)).label(f"purchases_{days}d")
                for days in PURCHASE_WINDOWS
            ),
            *(
                func.sum(case((purchase & within(days), Event.value), else_=0)).label(
                    f"revenue_{days}d"
                )
                for days in REVENUE_WINDOWS
            ),
        )
        .where(
            # The year holds most events: read them straight through, not one by one
            # through the time index (measured on the simulation's 1.3M events: 4.2 s
            # of SQLite's CPU down to 2.8 s).
            Likely(Event.occurred_at > now - timedelta(days=longest)),
            Likely(Event.occurred_at <= now),
        )
        .group_by(Event.type, Event.customer_id)
        .subquery("per_type")
    )
    t = per_type.c
    return select(
        t.customer_id,
        *(_decayed(spec, t, name).label(name) for name, spec in decays.items()),
        *(
            func.sum(t[f"purchases_{days}d"]).label(f"purchases_{days}d")
            for days in PURCHASE_WINDOWS
        ),
        *(func.sum(t[f"revenue_{days}d"]).label(f"revenue_{days}d") for days in REVENUE_WINDOWS),
    ).group_by(t.customer_id)


def _fading(spec: DecaySpec, age: Any) -> Any:
    """An event's weight: 1, halved every ``half_life_days`` of its age."""
    return func.exp(-math.log(2) * age / spec.half_life_days)


def _decayed(spec: DecaySpec, per_type: Any, name: str) -> Any:
    """Sum of each event's points, halved every ``half_life_days`` of its age, from the
    per-type sums of the weights (``per_type[name]``)."""
    if not spec.points:
        return literal(0.0)
    points = case(
        *((per_type.type == kind, value) for kind, value in spec.points.items()), else_=0.0
    )
    return func.coalesce(func.sum(points * per_type[name]), 0.0)
