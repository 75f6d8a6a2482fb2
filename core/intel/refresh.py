"""``cadence intel refresh``: scores for everyone, co-purchase recommendations (see
:mod:`core.intel.recommendations`), best send hours (:mod:`core.intel.send_time`) and
preferred channels (:mod:`core.intel.channel_preference`), then the CLV models fitted
and applied.

The CLV step reads one row per buyer from the rollups (repeat purchases,
the age of the first and last purchase, revenue), fits BG/NBD and
Gamma-Gamma in days, and writes each buyer's expected purchases in the next
90 days, P(alive) and 12-month CLV back to ``customer_scores``. Customers who
never bought keep empty CLV columns: the models describe buyers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import BigInteger, Column, Float, MetaData, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Store
from core.db.dialect import age_in_days, backend_of, scratch_table
from core.intel.channel_preference import ChannelRefresh, refresh_channel_preferences
from core.intel.clv import (
    ClvFitError,
    FitResult,
    customer_lifetime_value,
    expected_purchases,
    fit_clv,
    p_alive,
)
from core.intel.recommendations import RecommendationRefresh, refresh_recommendations
from core.intel.scores import refresh_scores
from core.intel.send_time import SendTimeRefresh, refresh_send_times
from core.models import ClvFit, CustomerRollup, CustomerScore
from core.program import Program

PREDICTION_DAYS = 90
CLV_HORIZON_DAYS = 365
TIME_UNIT = "days"
_UTC = ZoneInfo("UTC")

_predictions = Table(
    "clv_predictions",
    MetaData(),
    Column("customer_id", BigInteger, primary_key=True),
    Column("expected_purchases_90d", Float),
    Column("p_alive", Float),
    Column("clv_12m", Float),
    prefixes=["TEMPORARY"],
)


@dataclass(frozen=True)
class IntelRefresh:
    """What one refresh did: customers scored, the recommendations, send hours and channel
    preferences computed, and the CLV fit, or why there is none."""

    customers: int
    recommendations: RecommendationRefresh
    send_times: SendTimeRefresh
    channels: ChannelRefresh
    fit: FitResult | None
    fit_problem: str | None


@dataclass(frozen=True)
class PurchaseHistories:
    """Buyers' summaries in days, as the CLV models take them."""

    customer_ids: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    age: np.ndarray
    monetary: np.ndarray


async def refresh_intel(
    store: Store, program: Program, now: datetime, *, zone: ZoneInfo = _UTC
) -> IntelRefresh:
    """Refresh every score, the recommendations, send hours and channel preferences, and fit
    the CLV models as of ``now``. ``zone`` is the program's (the settings' ``time_zone``,
    UTC by default): the local clock of customers without a time zone of their own."""
    async with store.transaction() as session:
        customers = await refresh_scores(session, program.scores, now)
    recommendations = await refresh_recommendations(store, now)
    async with store.transaction() as session:
        send_times = await refresh_send_times(session, now, zone)
    async with store.transaction() as session:
        channels = await refresh_channel_preferences(session, now)
    async with store.reading() as session:
        histories = await read_purchase_histories(session, now)
    try:
        # Fitting a million buyers takes seconds of CPU: keep the event loop (the console) live.
        fit = await asyncio.to_thread(
            fit_clv,
            histories.frequency,
            histories.recency,
            histories.age,
            histories.monetary,
            time_unit=TIME_UNIT,
        )
    except ClvFitError as problem:
        return IntelRefresh(customers, recommendations, send_times, channels, None, str(problem))
    async with store.transaction() as session:
        await _store_predictions(session, histories, fit, now)
    return IntelRefresh(customers, recommendations, send_times, channels, fit, None)


async def read_purchase_histories(session: AsyncSession, now: datetime) -> PurchaseHistories:
    """Every buyer's repeat purchases, recency and age in days, and mean purchase value.

    The mean is over all purchases (the rollups keep totals, not the first
    purchase's value), a common simplification of Gamma-Gamma's repeat-only mean.
    """
    backend = backend_of(session)
    r = CustomerRollup
    rows = await session.execute(
        select(
            r.customer_id,
            r.purchase_count,
            age_in_days(backend, r.first_purchase_at, now),
            age_in_days(backend, r.last_purchase_at, now),
            r.revenue_total,
        ).where(r.purchase_count > 0, r.first_purchase_at <= now)
    )
    columns = np.array(list(rows), dtype=float).reshape(-1, 5).T
    ids, count, first_age, last_age, revenue = columns
    return PurchaseHistories(
        customer_ids=ids.astype(np.int64),
        frequency=count - 1,
        recency=np.clip(first_age - last_age, 0, None),
        age=first_age,
        monetary=revenue / count,
    )


async def _store_predictions(
    session: AsyncSession, histories: PurchaseHistories, fit: FitResult, now: datetime
) -> None:
    h = histories
    expected = expected_purchases(fit.bg_nbd, PREDICTION_DAYS, h.frequency, h.recency, h.age)
    alive = p_alive(fit.bg_nbd, h.frequency, h.recency, h.age)
    value = customer_lifetime_value(
        fit.bg_nbd, fit.gamma_gamma, h.frequency, h.recency, h.age, h.monetary, CLV_HORIZON_DAYS
    )
    await scratch_table(session, _predictions)
    rows = [
        {"customer_id": c, "expected_purchases_90d": e, "p_alive": p, "clv_12m": v}
        for c, e, p, v in zip(
            h.customer_ids.tolist(), expected.tolist(), alive.tolist(), value.tolist(), strict=True
        )
    ]
    if rows:
        await session.execute(insert(_predictions), rows)
    p = _predictions.c
    await session.execute(
        update(CustomerScore)
        .where(CustomerScore.customer_id == p.customer_id)
        .values(
            expected_purchases_90d=p.expected_purchases_90d, p_alive=p.p_alive, clv_12m=p.clv_12m
        )
    )
    session.add(
        ClvFit(
            fitted_at=now,
            customers=fit.customers,
            log_likelihood=fit.log_likelihood,
            time_unit=fit.time_unit,
            parameters=fit.as_dict(),
        )
    )
