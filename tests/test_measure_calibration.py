"""Calibration of the uplift estimate through the SQL path, with a known true effect.

Synthetic arms: 20,000 treated and 2,222 control members (a 10% control group) of one
run per seed, a 5% base rate of the goal and a true effect of 2 points (or none). The
goal events are drawn with numpy (seeded) at random moments of the window, with decoys
just outside it, stored as ingest stores events, and measured by
:func:`core.measure.goals.measure_goals`; the counts must equal numpy's own, and across
seeds the estimate must behave as a 95% interval and a 5% test should:

- the interval contains the true effect in at least 90% of seeds;
- a 2-point effect is detected (p < 0.05) in at least 80% of seeds;
- with no effect, p < 0.05 in at most 10% of seeds.

The default run measures three seeds of each; ``-m slow`` the full 30.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import BigInteger, Integer, String, case, insert, literal, select

from core.campaigns import store_campaign
from core.db import Store
from core.db.types import UtcDateTime
from core.measure.goals import Arm, measure_goals
from core.measure.uplift import SIGNIFICANCE, estimate
from core.models import Campaign, CampaignRun, Customer, OutboxMessage
from tests.conftest import NOW
from tests.planner_world import Person, add_people, campaign_spec
from tests.uplift_world import Happening, add_events

TREATED, CONTROL = 20_000, 2_222
BASE_RATE, EFFECT = 0.05, 0.02
WINDOW = timedelta(days=7)
START = NOW - timedelta(days=30)
_HOUR_MICROS = 3_600_000_000
_OUTBOX_COLUMNS = [
    *("run_id", "campaign_id", "customer_id", "channel", "category", "variant"),
    *("state", "due_at", "created_at"),
]


@dataclass(frozen=True)
class Scenario:
    seed: int
    effect: float

    @property
    def name(self) -> str:
        return f"calibration-{round(self.effect * 100)}-{self.seed}"

    @property
    def goal(self) -> str:
        # One goal event type per scenario: the scenarios share customers, not goals.
        return f"goal_{round(self.effect * 100)}_{self.seed}"


async def _scenario(store: Store, scenario: Scenario, people: np.ndarray) -> tuple[Arm, Arm]:
    """One campaign run over ``people`` (the first CONTROL of them kept back) and its
    goal events; returns the arms as numpy counts them."""
    goal = {"event": scenario.goal, "within": "7d"}
    spec = campaign_spec(scenario.name, "all", control=10, goal=goal)
    async with store.transaction() as session:
        campaign = store_campaign(session, spec, origin="program", now=START)
        await session.flush()
        run = CampaignRun(
            campaign_id=campaign.id,
            run_key="calibration",
            occasion="manual",
            status="planned",
            due_at=START,
            planned_at=START,
            outcomes={},
        )
        session.add(run)
        await session.flush()
        cutoff = int(people[CONTROL - 1])
        state = case((Customer.id <= cutoff, "control"), else_="sent")
        await session.execute(
            insert(OutboxMessage).from_select(
                _OUTBOX_COLUMNS,
                select(
                    literal(run.id, BigInteger),
                    literal(campaign.id, Integer),
                    Customer.id,
                    literal("email", String),
                    literal("marketing", String),
                    literal("offer_a", String),
                    state,
                    literal(START, UtcDateTime()),
                    literal(START, UtcDateTime()),
                ),
            )
        )
    rng = np.random.default_rng(scenario.seed)
    treated = np.arange(len(people)) >= CONTROL
    chance = np.where(treated, BASE_RATE + scenario.effect, BASE_RATE)
    converts = rng.random(len(people)) < chance
    window_micros = WINDOW // timedelta(microseconds=1)
    inside = rng.integers(1, window_micros + 1, len(people))
    # Decoys: a tenth of the members also get an event in the hour up to the run (its
    # very moment included) or the hour after the window, which must not count.
    decoy = rng.random(len(people)) < 0.1
    before = rng.random(len(people)) < 0.5
    outside = np.where(
        before,
        -rng.integers(0, _HOUR_MICROS, len(people)),
        window_micros + rng.integers(1, _HOUR_MICROS, len(people)),
    )
    events = [
        Happening(int(people[i]), scenario.goal, START + timedelta(microseconds=int(inside[i])))
        for i in np.flatnonzero(converts)
    ] + [
        Happening(int(people[i]), scenario.goal, START + timedelta(microseconds=int(outside[i])))
        for i in np.flatnonzero(decoy)
    ]
    await add_events(store, events, NOW)
    return (
        Arm(int(treated.sum()), int((converts & treated).sum())),
        Arm(int((~treated).sum()), int((converts & ~treated).sum())),
    )


async def _calibrate(store: Store, seeds: range) -> None:
    ids = await add_people(store, [Person(f"m{n}") for n in range(TREATED + CONTROL)], START)
    people = np.array(sorted(ids.values()), dtype=np.int64)
    scenarios = [Scenario(seed, effect) for effect in (EFFECT, 0.0) for seed in seeds]
    truth = {s.name: await _scenario(store, s, people) for s in scenarios}
    async with store.reading() as session:
        campaigns = list((await session.execute(select(Campaign))).scalars())
        results = {r.name: r for r in await measure_goals(session, campaigns, NOW)}
    covered, detected, false_alarms = 0, 0, 0
    for scenario in scenarios:
        result = results[scenario.name]
        assert (result.treated, result.control) == truth[scenario.name], scenario
        figures = estimate(result.treated, result.control, min_sample_per_arm=100)
        interval, p_value = figures.absolute_interval, figures.p_value
        assert interval is not None and p_value is not None
        covered += interval.low <= scenario.effect <= interval.high
        if scenario.effect:
            detected += p_value < SIGNIFICANCE
        else:
            false_alarms += p_value < SIGNIFICANCE
    assert covered >= 0.9 * len(scenarios), covered
    assert detected >= 0.8 * len(seeds), detected
    assert false_alarms <= 0.1 * len(seeds), false_alarms


async def test_uplift_calibration_on_a_few_seeds(store: Store) -> None:
    await _calibrate(store, range(3))


@pytest.mark.slow
async def test_uplift_calibration_on_thirty_seeds(store: Store) -> None:
    await _calibrate(store, range(30))
