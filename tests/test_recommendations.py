"""Co-purchase recommendations on both databases, against a history small enough to work
out by hand.

Purchases in the last year (A bought x twice; a cart add and a purchase
without a product do not count; G's only purchase is older than a year; F
bought nothing)::

    A: x y      B: x y z      C: x z      D: y z      E: x w

Five buyers. Buyers per product: x 4, y 3, z 3, w 1. Customers per pair:
x-y 2 (A, B), x-z 2 (B, C), y-z 2 (B, D), x-w 1 (E: below the minimum of 2).
Lift = shared * 5 / (buyers * buyers): x-y = x-z = 10/12, y-z = 10/9.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from core.db import Store
from core.ingest import import_file
from core.intel.recommendations import (
    RecommendationRefresh,
    recommendations_for,
    refresh_recommendations,
)
from core.models import Customer, CustomerRecommendation, Recommendation
from core.settings import Settings
from tests.conftest import NOW
from tests.helpers import jsonl, seed_customers

XY = XZ = 10 / 12
YZ = 10 / 9
SHARE = {"x": 4 / 5, "y": 3 / 5, "z": 3 / 5, "w": 1 / 5}


def _purchase(
    customer: str, product: Any, days_ago: float, kind: str = "purchase"
) -> dict[str, Any]:
    properties = {} if product is None else {"product_id": product}
    return {
        "customer_id": customer,
        "type": kind,
        "occurred_at": (NOW - timedelta(days=days_ago)).isoformat(),
        "value": 10,
        "properties": properties,
    }


async def _history(store: Store, settings: Settings, tmp_path: Path) -> None:
    await seed_customers(store, settings, tmp_path, "A", "B", "C", "D", "E", "F", "G")
    events = [
        _purchase("A", "x", 10),
        _purchase("A", "x", 5),  # bought twice: one buyer of x
        _purchase("A", "y", 20),
        _purchase("A", "w", 1, kind="cart_add"),  # not a purchase
        _purchase("A", None, 3),  # a purchase without a product
        _purchase("B", "x", 100),
        _purchase("B", "y", 200),
        _purchase("B", "z", 300),
        _purchase("C", "x", 30),
        _purchase("C", "z", 31),
        _purchase("D", "y", 40),
        _purchase("D", "z", 41),
        _purchase("E", "x", 50),
        _purchase("E", "w", 51),
        _purchase("G", "w", 400),  # older than a year
    ]
    report = await import_file(store, settings, "events", jsonl(tmp_path / "e.jsonl", *events))
    assert report.rejected == 0


async def _pairs(store: Store) -> dict[str, list[tuple[str, int, float]]]:
    r = Recommendation
    async with store.reading() as session:
        rows = await session.execute(
            select(r.product_id, r.recommended_id, r.customers, r.score).order_by(
                r.product_id, r.score.desc(), r.recommended_id
            )
        )
        pairs: dict[str, list[tuple[str, int, float]]] = {}
        for product, recommended, customers, score in rows:
            pairs.setdefault(product, []).append((recommended, customers, score))
        return pairs


async def _picks(store: Store) -> dict[str, list[tuple[str, float]]]:
    cr = CustomerRecommendation
    async with store.reading() as session:
        rows = await session.execute(
            select(Customer.external_id, cr.rank, cr.product_id, cr.score)
            .join(Customer, Customer.id == cr.customer_id)
            .order_by(Customer.external_id, cr.rank)
        )
        picks: dict[str, list[tuple[str, float]]] = {}
        for customer, rank, product, score in rows:
            assert rank == len(picks.setdefault(customer, [])) + 1
            picks[customer].append((product, score))
        return picks


def _close(actual: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> bool:
    """Equal lists of tuples, floats compared to 1e-9."""
    return len(actual) == len(expected) and all(
        len(a) == len(e)
        and all(
            math.isclose(x, y, rel_tol=1e-9) if isinstance(y, float) else x == y
            for x, y in zip(a, e, strict=True)
        )
        for a, e in zip(actual, expected, strict=True)
    )


async def test_pairs_lift_and_picks_match_the_hand_computation(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: object
) -> None:
    await _history(store, settings, tmp_path)
    result = await refresh_recommendations(store, NOW)
    assert result == RecommendationRefresh(products=4, pairs=6, customers=7)

    pairs = await _pairs(store)
    assert sorted(pairs) == ["x", "y", "z"]  # w's only pair has one customer
    assert _close(pairs["x"], [("y", 2, XY), ("z", 2, XZ)])  # a tie: by product id
    assert _close(pairs["y"], [("z", 2, YZ), ("x", 2, XY)])  # lift, not count, orders
    assert _close(pairs["z"], [("y", 2, YZ), ("x", 2, XZ)])

    picks = await _picks(store)
    popular = [(product, SHARE[product]) for product in ("x", "y", "z", "w")]
    assert _close(picks["A"], [("z", XZ + YZ), ("w", SHARE["w"])])
    assert _close(picks["B"], [("w", SHARE["w"])])  # bought every paired product
    assert _close(picks["C"], [("y", XY + YZ), ("w", SHARE["w"])])
    assert _close(picks["D"], [("x", XY + XZ), ("w", SHARE["w"])])
    assert _close(picks["E"], [("y", XY), ("z", XZ)])  # nothing popular left to add
    assert _close(picks["F"], popular)  # bought nothing: the most popular
    assert _close(picks["G"], popular)  # bought only before the window


async def test_limits_cut_the_lists(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: object
) -> None:
    await _history(store, settings, tmp_path)
    result = await refresh_recommendations(
        store, NOW, per_product=1, per_customer=1, min_shared_buyers=1
    )
    # With one shared buyer enough, x-w counts: lift 1 * 5 / (4 * 1) = 1.25 leads x's list.
    pairs = await _pairs(store)
    assert _close(pairs["x"], [("w", 1, 1.25)])
    assert _close(pairs["w"], [("x", 1, 1.25)])
    assert _close(pairs["y"], [("z", 2, YZ)])
    assert result.pairs == 4
    picks = await _picks(store)
    assert all(len(products) == 1 for products in picks.values())
    assert _close(picks["A"], [("w", 1.25)])  # x's only pick beats what y offers (z)
    assert _close(picks["B"], [("w", 1.25)])
    assert _close(picks["F"], [("x", SHARE["x"])])


async def test_a_refresh_replaces_everything(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: object
) -> None:
    await _history(store, settings, tmp_path)
    await refresh_recommendations(store, NOW)
    # A year later every purchase is out of the window: nothing is left over.
    later = NOW + timedelta(days=400)
    assert await refresh_recommendations(store, later) == RecommendationRefresh(0, 0, 0)
    assert await _pairs(store) == {} and await _picks(store) == {}


async def test_numeric_product_ids_count_by_their_digits(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: object
) -> None:
    await seed_customers(store, settings, tmp_path, "P", "Q")
    events = [_purchase(c, p, 1) for c in ("P", "Q") for p in (42, "7")]
    await import_file(store, settings, "events", jsonl(tmp_path / "n.jsonl", *events))
    await refresh_recommendations(store, NOW)
    assert _close((await _pairs(store))["42"], [("7", 2, 1.0)])


async def test_recommendations_for_a_batch_in_one_query(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: object
) -> None:
    await _history(store, settings, tmp_path)
    await refresh_recommendations(store, NOW)
    async with store.reading() as session:
        rows = await session.execute(select(Customer.external_id, Customer.id))
        ids: dict[str, int] = dict(rows.all())
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with store.reading() as session:
            picks = await recommendations_for(session, [ids["F"], ids["A"], 999_999], 2)
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", count)
    assert len([s for s in statements if "customer_recommendations" in s]) == 1
    assert list(picks) == [ids["F"], ids["A"], 999_999]
    assert [p["product_id"] for p in picks[ids["F"]]] == ["x", "y"]
    assert picks[ids["A"]][0]["product_id"] == "z"
    assert math.isclose(picks[ids["A"]][0]["score"], XZ + YZ)
    assert picks[999_999] == []
    async with store.reading() as session:
        assert await recommendations_for(session, [], 3) == {}


@pytest.mark.parametrize("limit", [0, -1])
async def test_no_picks_asked_for_none_given(store: Store, limit: int) -> None:
    async with store.reading() as session:
        assert await recommendations_for(session, [1, 2], limit) == {1: [], 2: []}
