"""Scores and CLV as `cadence intel refresh` computes them, checked against hand computations."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from config import DEFAULT_CONFIG_DIR
from core.db import Store
from core.ingest import import_file
from core.intel.clv import BgNbdParams, GammaGammaParams, simulate_bg_nbd, simulate_spend
from core.intel.refresh import refresh_intel
from core.intel.scores import refresh_scores
from core.models import ClvFit, Customer, CustomerScore
from core.program import Program, load_program
from core.settings import Settings
from tests.conftest import NOW
from tests.helpers import seed_customers, write

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program(DEFAULT_CONFIG_DIR / "program")


def _at(days_ago: float) -> str:
    return (NOW - days_ago * DAY).isoformat()


async def _scores(store: Store) -> dict[str, CustomerScore]:
    async with store.reading() as session:
        rows = await session.execute(
            select(Customer.external_id, CustomerScore).join(
                CustomerScore, CustomerScore.customer_id == Customer.id
            )
        )
        return dict(rows.all())


async def test_windowed_totals_and_decayed_scores(
    store: Store, settings: Settings, tmp_path: Path, program: Program, frozen_clock: object
) -> None:
    await seed_customers(store, settings, tmp_path, "a", "b", "idle")
    rows = [
        ("a", "purchase", _at(10), "40"),
        ("a", "purchase", _at(60), "60"),
        ("a", "purchase", _at(200), "100"),
        ("a", "message_opened", _at(30), ""),
        ("a", "message_clicked", _at(0.5), ""),
        ("a", "login", _at(300), ""),  # outside the engagement window of 180 days
        ("b", "cart_add", _at(14), ""),
        ("b", "purchase", _at(400), "25"),  # older than a year: in no window
    ]
    csv = "customer_id,type,occurred_at,value\n" + "".join(",".join(r) + "\n" for r in rows)
    await import_file(store, settings, "events", write(tmp_path / "events.csv", csv))

    async with store.transaction() as session:
        assert await refresh_scores(session, program.scores, NOW) == 3
    scores = await _scores(store)

    a, b, idle = scores["a"], scores["b"], scores["idle"]
    assert (a.purchases_30d, a.purchases_90d, a.purchases_365d) == (1, 2, 3)
    assert (a.revenue_90d, a.revenue_365d) == (100.0, 200.0)
    assert (b.purchases_365d, b.revenue_365d) == (0, 0)
    engagement = program.scores.engagement
    expected = engagement.points["message_opened"] * 0.5 ** (30 / engagement.half_life_days)
    expected += engagement.points["message_clicked"] * 0.5 ** (0.5 / engagement.half_life_days)
    assert math.isclose(a.engagement_score, expected, rel_tol=1e-9)
    lead = program.scores.lead
    assert math.isclose(
        b.lead_score, lead.points["cart_add"] * 0.5 ** (14 / lead.half_life_days), rel_tol=1e-9
    )
    assert idle.engagement_score == 0 and idle.lead_score == 0 and idle.purchases_365d == 0
    # Only "a" and "b" ever bought; each is in a quintile, non-buyers have no RFM.
    assert idle.rfm_score is None
    assert a.recency_score is not None and b.recency_score is not None
    assert a.recency_score > b.recency_score and a.monetary_score > b.monetary_score  # type: ignore[operator]


async def test_rfm_quintiles_split_buyers_evenly(
    store: Store, settings: Settings, tmp_path: Path, program: Program, frozen_clock: object
) -> None:
    ids = [f"c{n:02d}" for n in range(10)]
    await seed_customers(store, settings, tmp_path, *ids)
    # Customer n bought n + 1 times, the last time n days ago, spending 10 each time.
    rows = [
        f"c{n:02d},purchase,{_at(n + k * 30 + 0.25)},10\n" for n in range(10) for k in range(n + 1)
    ]
    csv = "customer_id,type,occurred_at,value\n" + "".join(rows)
    await import_file(store, settings, "events", write(tmp_path / "events.csv", csv))
    async with store.transaction() as session:
        await refresh_scores(session, program.scores, NOW)
    scores = await _scores(store)

    recency = [scores[i].recency_score for i in ids]
    frequency = [scores[i].frequency_score for i in ids]
    assert recency == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert frequency == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert scores["c09"].rfm_score == 155


async def test_clv_is_fitted_and_stored_for_buyers(
    store: Store, settings: Settings, tmp_path: Path, program: Program, frozen_clock: object
) -> None:
    rng = np.random.default_rng(5)
    buyers = 300
    ages = rng.uniform(60, 360, buyers)
    frequency, recency, _ = simulate_bg_nbd(BgNbdParams(0.5, 10.0, 0.8, 2.5), buyers, ages, rng)
    spend = simulate_spend(GammaGammaParams(6.0, 4.0, 15.0), frequency, rng)
    ids = [f"b{n:03d}" for n in range(buyers)]
    await seed_customers(store, settings, tmp_path, *ids, "never")
    rows = []
    for n, (x, t_x, age) in enumerate(zip(frequency, recency, ages, strict=True)):
        value = f"{max(float(spend[n]), 5.0):.2f}"
        times = [age] + [age - t_x * (k + 1) / x for k in range(int(x))]
        rows += [f"b{n:03d},purchase,{_at(t)},{value}\n" for t in times]
    csv = "customer_id,type,occurred_at,value\n" + "".join(rows)
    await import_file(store, settings, "events", write(tmp_path / "events.csv", csv))

    result = await refresh_intel(store, program, NOW)

    assert result.fit is not None, result.fit_problem
    fit = result.fit.as_dict()
    assert fit["customers"] == buyers and fit["time_unit"] == "days"
    scores = await _scores(store)
    assert scores["never"].p_alive is None and scores["never"].clv_12m is None
    alive = [scores[i].p_alive for i in ids]
    assert all(p is not None and 0 <= p <= 1 for p in alive)
    assert all((scores[i].clv_12m or 0) >= 0 for i in ids)
    # BG/NBD: a customer can only leave after a repeat purchase, so one-time buyers are alive.
    once = [i for i, x in zip(ids, frequency, strict=True) if x == 0]
    assert once and all(scores[i].p_alive == pytest.approx(1.0) for i in once)
    assert any((scores[i].p_alive or 1) < 0.9 for i in ids)
    async with store.reading() as session:
        stored = (await session.execute(select(ClvFit))).scalar_one()
    assert stored.parameters == fit and stored.customers == buyers


async def test_too_few_buyers_skip_the_fit_but_keep_the_scores(
    store: Store, settings: Settings, tmp_path: Path, program: Program, frozen_clock: object
) -> None:
    await seed_customers(store, settings, tmp_path, "x")
    csv = f"customer_id,type,occurred_at,value\nx,purchase,{_at(3)},10\n"
    await import_file(store, settings, "events", write(tmp_path / "events.csv", csv))
    result = await refresh_intel(store, program, NOW)
    assert result.fit is None and result.fit_problem
    assert result.customers == 1
    assert (await _scores(store))["x"].purchases_30d == 1
