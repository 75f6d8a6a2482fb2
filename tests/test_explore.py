"""Explorer queries over demo data, on both databases."""

from __future__ import annotations

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store
from core.demo_data import load_demo_data
from core.explore import behaviours_that_retain, category_shares, stage_profiles
from core.lifecycle import refresh_stages
from core.program import load_program
from core.settings import Settings


async def test_explorer_queries_describe_the_stages(
    store: Store, settings: Settings, frozen_clock: clock.FixedClock
) -> None:
    program = load_program(DEFAULT_CONFIG_DIR / "program")
    await load_demo_data(store, settings, customers=150, days=200, seed=3)
    now = clock.now()
    async with store.transaction() as session:
        await refresh_stages(session, program, now)
    async with store.reading() as session:
        profiles = await stage_profiles(session, now)
        shares = await category_shares(session, now)
        behaviours = await behaviours_that_retain(session, now, inactive_stage="inactive")

    assert sum(p.customers for p in profiles) == 150
    by_stage = {p.stage: p for p in profiles}
    # Inactive customers did nothing in the last 30 days; registered ones never bought.
    assert by_stage["inactive"].average_active_days_30d == 0
    assert by_stage["registered"].average_days_to_first_purchase is None
    assert by_stage["active"].average_active_days_30d > 0
    assert by_stage["active"].average_days_to_first_purchase is not None
    assert by_stage["active"].average_days_to_first_purchase >= 0
    assert shares and all(0 < s.share <= 1 for s in shares)
    assert {s.category for s in shares} <= {"slots", "live-casino", "sports", "poker", "lottery"}
    assert behaviours and all(0 <= b.retained_with <= 1 for b in behaviours)
    assert "registered" in {b.event_type for b in behaviours}
