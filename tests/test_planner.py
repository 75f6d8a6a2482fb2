"""The planner: audiences through the contact policy into the outbox, with every outcome counted."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store
from core.models import CampaignRun, OutboxMessage
from core.planner.runs import plan_due_runs
from core.policy import Outcome
from core.program import Program, load_program
from core.settings import Settings
from tests.conftest import NOW
from tests.planner_world import Person, add_campaign, add_people, add_segment, campaign_spec

DAY = timedelta(days=1)


def _program() -> Program:
    return load_program(DEFAULT_CONFIG_DIR / "program")


async def test_a_tick_plans_due_cycles_with_priority_and_caps(
    store: Store, settings: Settings
) -> None:
    ids = await add_people(store, [Person(f"c{i}") for i in range(10)], NOW)
    everyone = list(ids.values())
    await add_segment(store, "all", everyone, NOW)
    await add_segment(store, "half", everyone[:5], NOW)
    start = NOW.replace(hour=9)
    await add_campaign(store, campaign_spec("low", "all", priority=10), start)
    await add_campaign(store, campaign_spec("high", "half", priority=90), start)
    settings.policy.quiet_hours = None
    tick = NOW.replace(hour=10, minute=1)
    with clock.using(clock.FixedClock(tick)):
        planned = await plan_due_runs(store, _program(), settings, tick)
    by_name = {p.plan.campaign: p.plan for p in planned}
    assert by_name["high"].outcomes == {Outcome.QUEUED: 5}
    assert by_name["low"].outcomes == {Outcome.QUEUED: 5, Outcome.LOST: 5}
    assert by_name["low"].lost_to == {"high": 5}
    async with store.reading() as session:
        rows = (await session.execute(select(OutboxMessage))).scalars().all()
        runs = (await session.execute(select(CampaignRun))).scalars().all()
    assert len(rows) == 10
    assert {r.status for r in runs} == {"planned"}
    again = await plan_due_runs(store, _program(), settings, tick)
    assert again == []
