"""Lifecycle stages with the default program: everyone in exactly one stage, every move kept."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from config import DEFAULT_CONFIG_DIR
from core.db import Store
from core.lifecycle import StageRefresh, refresh_stages, stage_overview
from core.models import Customer, CustomerStage, Event, StageTransition
from core.program import Program, load_program
from tests.conftest import NOW
from tests.helpers import add_customer, update_rollup

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program(DEFAULT_CONFIG_DIR / "program")


async def _stages(store: Store) -> dict[str, str | None]:
    async with store.reading() as session:
        rows = await session.execute(
            select(Customer.external_id, CustomerStage.stage).join(
                CustomerStage, CustomerStage.customer_id == Customer.id
            )
        )
        return {external_id: stage for external_id, stage in rows}


async def _transitions(store: Store) -> list[tuple[str, str | None, str]]:
    async with store.reading() as session:
        rows = await session.execute(
            select(Customer.external_id, StageTransition.from_stage, StageTransition.to_stage)
            .join(Customer, Customer.id == StageTransition.customer_id)
            .order_by(StageTransition.id)
        )
        return list(rows.all())


async def _refresh(store: Store, program: Program, at: datetime = NOW) -> StageRefresh:
    async with store.transaction() as session:
        return await refresh_stages(session, program, at)


async def _populate(store: Store) -> dict[str, int]:
    return {
        "reg": await add_customer(store, "reg", NOW - 10 * DAY, last_event_at=NOW - 2 * DAY),
        "new": await add_customer(
            store,
            "new",
            NOW - 30 * DAY,
            first_purchase_at=NOW - 20 * DAY,
            last_event_at=NOW - DAY,
            purchase_count=1,
        ),
        "act": await add_customer(
            store,
            "act",
            NOW - 400 * DAY,
            first_purchase_at=NOW - 200 * DAY,
            last_event_at=NOW - 5 * DAY,
            purchase_count=4,
        ),
        "ina": await add_customer(
            store,
            "ina",
            NOW - 400 * DAY,
            first_purchase_at=NOW - 300 * DAY,
            last_event_at=NOW - 100 * DAY,
            purchase_count=2,
        ),
        # No events at all: registration is their last activity, long ago.
        "ghost": await add_customer(store, "ghost", NOW - 200 * DAY),
    }


async def test_every_customer_gets_exactly_one_stage(store: Store, program: Program) -> None:
    await _populate(store)
    result = await _refresh(store, program)

    assert await _stages(store) == {
        "reg": "registered",
        "new": "new",
        "act": "active",
        "ina": "inactive",
        "ghost": "inactive",
    }
    assert result.customers == 5 and result.moved == 5 and result.unmatched == 0
    assert sorted(await _transitions(store)) == sorted(
        [
            ("reg", None, "registered"),
            ("new", None, "new"),
            ("act", None, "active"),
            ("ina", None, "inactive"),
            ("ghost", None, "inactive"),
        ]
    )


async def test_refreshing_again_moves_no_one(store: Store, program: Program) -> None:
    await _populate(store)
    await _refresh(store, program)
    again = await _refresh(store, program, NOW + timedelta(hours=1))
    assert again.moved == 0
    assert len(await _transitions(store)) == 5


async def test_a_comeback_is_reactivated_then_active(store: Store, program: Program) -> None:
    ids = await _populate(store)
    await _refresh(store, program)
    await update_rollup(store, ids["ina"], last_event_at=NOW + DAY - timedelta(hours=1))

    result = await _refresh(store, program, NOW + DAY)
    assert result.reactivated == 1
    assert (await _stages(store))["ina"] == "reactivated"

    # Still around a month later: an established customer again.
    await update_rollup(store, ids["ina"], last_event_at=NOW + 40 * DAY)
    await _refresh(store, program, NOW + 41 * DAY)
    assert (await _stages(store))["ina"] == "active"
    moves = [(f, t) for who, f, t in await _transitions(store) if who == "ina"]
    assert moves == [(None, "inactive"), ("inactive", "reactivated"), ("reactivated", "active")]


async def test_new_customers_age_into_active(store: Store, program: Program) -> None:
    await _populate(store)
    await _refresh(store, program)
    # 80 days on, "new" bought 100 days ago, and nobody has done anything since.
    later = NOW + 80 * DAY
    stages = await _stages(store)
    await _refresh(store, program, later)
    after = await _stages(store)
    assert stages["new"] == "new" and after["new"] == "inactive"
    assert after["act"] == "inactive" and after["reg"] == "inactive"


async def test_overview_counts_sizes_and_moves(store: Store, program: Program) -> None:
    ids = await _populate(store)
    await _refresh(store, program)
    await update_rollup(store, ids["ina"], last_event_at=NOW + DAY)
    await _refresh(store, program, NOW + DAY + timedelta(hours=1))

    async with store.reading() as session:
        overview = {
            s.name: s for s in await stage_overview(session, program, NOW + 2 * DAY + 2 * HOUR)
        }
        total = (await session.execute(select(func.count()).select_from(CustomerStage))).scalar()
    assert [name for name in overview] == [stage.name for stage in program.stages]
    assert overview["inactive"].customers == 1 and overview["reactivated"].customers == 1
    assert overview["reactivated"].entered_day == 0 and overview["reactivated"].entered_week == 1
    assert overview["inactive"].left_week == 1
    # First placements are not moves.
    assert overview["registered"].entered_week == 0
    assert total == 5


async def test_history_places_a_past_comeback_in_reactivated(
    store: Store, program: Program
) -> None:
    """Placed for the first time, a customer who came back 10 days ago after a 90-day gap is
    "reactivated"; one whose gaps were all short is not."""
    back = await add_customer(
        store,
        "back",
        NOW - 300 * DAY,
        first_purchase_at=NOW - 290 * DAY,
        last_event_at=NOW - 2 * DAY,
    )
    steady = await add_customer(
        store,
        "steady",
        NOW - 300 * DAY,
        first_purchase_at=NOW - 290 * DAY,
        last_event_at=NOW - 2 * DAY,
    )
    async with store.transaction() as session:
        for customer, days_ago in [
            (back, 290),
            (back, 100),
            (back, 10),
            (back, 2),
            *((steady, d) for d in range(290, 0, -30)),
        ]:
            session.add(
                Event(
                    customer_id=customer,
                    type="login",
                    occurred_at=NOW - days_ago * DAY,
                    source="test",
                    dedupe_key=customer * 1000 + days_ago,
                )
            )
    await _refresh(store, program)
    stages = await _stages(store)
    assert stages == {"back": "reactivated", "steady": "active"}
    async with store.reading() as session:
        reactivated_at = (
            await session.execute(
                select(CustomerStage.reactivated_at).where(CustomerStage.customer_id == back)
            )
        ).scalar_one()
    assert reactivated_at == NOW - 10 * DAY
