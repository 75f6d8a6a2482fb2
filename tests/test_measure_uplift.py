"""Goals and uplift: who of each arm converted (window edges, event rules, revenue), the
statistics against published and hand-worked values, and the verdicts."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from sqlalchemy import update

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store
from core.errors import CampaignError
from core.measure.goals import Arm
from core.measure.uplift import (
    Verdict,
    estimate,
    newcombe_interval,
    relative_interval,
    two_proportion_p_value,
    wilson_interval,
)
from core.models import OutboxMessage
from core.planner.control import control_bucket, control_threshold
from core.planner.launch import run_campaign_now
from core.program import load_program
from core.settings import Settings
from tests.conftest import NOW
from tests.planner_world import Person, add_campaign, add_people, add_segment, campaign_spec
from tests.uplift_world import (
    Happening,
    add_events,
    add_run,
    measured,
    measured_all,
    uplift_of,
)

DAY = timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)
GOAL = {"event": "purchase", "within": "7d", "value": "revenue"}


# Statistics, against published values (Newcombe 1998) and closed forms worked by hand.


def test_wilson_interval_matches_newcombes_worked_examples() -> None:
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", table I.
    for (x, n), (low, high) in {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }.items():
        interval = wilson_interval(x, n)
        assert (round(interval.low, 4), round(interval.high, 4)) == (low, high), (x, n)


def test_newcombe_interval_matches_his_table_of_differences() -> None:
    # Newcombe (1998), "Interval estimation for the difference between independent
    # proportions", table II, method 10.
    for (x_t, n_t, x_c, n_c), (low, high) in {
        (56, 70, 48, 80): (0.0524, 0.3339),
        (9, 10, 3, 10): (0.1705, 0.8090),
        (5, 56, 0, 29): (-0.0381, 0.1926),
        (0, 10, 0, 20): (-0.1611, 0.2775),
    }.items():
        interval = newcombe_interval(x_t, n_t, x_c, n_c)
        assert (round(interval.low, 4), round(interval.high, 4)) == (low, high)


def test_p_value_and_relative_interval_match_hand_worked_closed_forms() -> None:
    # 6% of 1,000 against 4% of 1,000: pooled 5%, se = sqrt(.05 * .95 * 2 / 1000),
    # z = 0.02 / se = 2.05196, two-sided p = 0.04017.
    assert two_proportion_p_value(60, 1000, 40, 1000) == pytest.approx(0.040174, abs=1e-6)
    assert two_proportion_p_value(0, 500, 0, 50) == 1.0  # nobody converted: no evidence
    # Risk ratio 1.5, se(log) = sqrt(1/60 - 1/1000 + 1/40 - 1/1000) = 0.199164.
    interval = relative_interval(60, 1000, 40, 1000)
    assert interval is not None
    assert (interval.low, interval.high) == pytest.approx((0.015224, 1.216260), abs=1e-5)
    assert relative_interval(3, 100, 0, 100) is None


def test_estimate_reports_rates_uplift_and_increments() -> None:
    result = estimate(Arm(1000, 60, 1200.0), Arm(1000, 40, 600.0), min_sample_per_arm=100)
    assert result.verdict is Verdict.UPLIFT
    assert (result.treated_rate, result.control_rate) == (0.06, 0.04)
    assert result.absolute == pytest.approx(0.02)
    assert result.relative == pytest.approx(0.5)
    assert result.p_value == pytest.approx(0.040174, abs=1e-6)
    assert result.incremental_conversions == pytest.approx(20.0)
    interval, conversions = result.absolute_interval, result.incremental_interval
    assert interval is not None and conversions is not None
    assert interval.low < 0.02 < interval.high
    assert (conversions.low, conversions.high) == pytest.approx(
        (interval.low * 1000, interval.high * 1000)
    )
    # Revenue per treated member 1.20 against 0.60 per control member, over 1,000 treated.
    assert result.incremental_revenue == pytest.approx(600.0)


def test_estimate_verdicts() -> None:
    assert estimate(Arm(1000, 30), Arm(1000, 60), 100).verdict is Verdict.NEGATIVE
    assert estimate(Arm(1000, 52), Arm(1000, 50), 100).verdict is Verdict.NO_DIFFERENCE
    small = estimate(Arm(5000, 400), Arm(99, 1), 100)
    assert small.verdict is Verdict.NOT_ENOUGH_DATA
    assert (small.absolute, small.p_value, small.treated_rate) == (None, None, None)
    assert small.treated == Arm(5000, 400)  # the counts are still there to see


# Attribution on the store: both arms, one clock, the window's edges.


async def _offer_world(store: Store) -> tuple[dict[str, int], int]:
    """Customers ``a`` to ``j`` and the campaign ``offer`` (its id)."""
    ids = await add_people(store, [Person(key) for key in "abcdefghij"], NOW - 400 * DAY)
    spec = campaign_spec("offer", "all", control=50, goal=GOAL)
    return ids, await add_campaign(store, spec, NOW)


async def test_both_arms_convert_on_the_runs_clock_within_the_window(store: Store) -> None:
    ids, campaign = await _offer_world(store)
    a, b, c, d, e, f, g, h, i = (ids[key] for key in "abcdefghi")
    start = NOW - 30 * DAY
    sent, control = "sent", "control"
    arms = {a: sent, b: sent, c: sent, d: sent, e: control, f: control, g: control}
    await add_run(store, campaign, start, {**arms, h: "queued", i: "failed"})
    await add_run(store, campaign, start + DAY, {a: sent, e: control}, status="failed")
    end = start + 7 * DAY
    await add_events(
        store,
        [
            Happening(a, "purchase", end, 5.0),  # the window's last moment counts
            Happening(b, "purchase", start, 99.0),  # the run's own moment does not
            Happening(b, "purchase", end + MICROSECOND, 99.0),  # nor just after the end
            Happening(c, "purchase", start + DAY, 30.0),
            Happening(c, "purchase", start + 2 * DAY, 20.0),  # one conversion, both values
            Happening(d, "login", start + DAY),  # not the goal's type
            Happening(e, "purchase", start + 3 * DAY, 10.0),  # control converts alike
            Happening(f, "purchase", start - timedelta(hours=1), 10.0),  # before the run
            Happening(h, "purchase", start + DAY, 10.0),  # never sent: in neither arm
            Happening(i, "purchase", start + DAY, 10.0),
        ],
        NOW,
    )
    result = await measured(store, "offer", NOW)
    (run,) = result.runs  # the failed run is no run
    assert run.final and run.closes_at == end
    assert run.treated == Arm(4, 2, 55.0)
    assert run.control == Arm(3, 1, 10.0)
    assert (result.treated, result.control) == (run.treated, run.control)
    assert (result.sent, result.kept_back) == (4, 3)


async def test_open_windows_show_conversions_so_far_and_stay_out_of_the_totals(
    store: Store,
) -> None:
    ids, campaign = await _offer_world(store)
    a, e = ids["a"], ids["e"]
    closed = await add_run(store, campaign, NOW - 20 * DAY, {a: "sent", e: "control"})
    await add_run(store, campaign, NOW - 2 * DAY, {a: "sent", e: "control"})
    await add_run(store, campaign, NOW + timedelta(hours=1), {a: "sent"})  # after as_of: not yet
    await add_events(
        store,
        [
            Happening(a, "purchase", NOW - DAY, 12.0),
            Happening(e, "purchase", NOW + timedelta(hours=2), 12.0),  # after as_of
        ],
        NOW,
    )
    result = await measured(store, "offer", NOW)
    assert [run.final for run in result.runs] == [True, False]
    assert result.runs[0].run_id == closed
    assert result.runs[0].treated == Arm(1, 0, 0.0)
    open_run = result.runs[1]
    assert open_run.closes_at == NOW + 5 * DAY
    assert open_run.treated == Arm(1, 1, 12.0) and open_run.control == Arm(1, 0, 0.0)
    assert result.treated == Arm(1, 0, 0.0)  # the final run only
    assert result.sent == 2
    later = await measured(store, "offer", NOW + 6 * DAY)
    assert [run.final for run in later.runs] == [True, True, False]
    assert later.runs[1].control == Arm(1, 1, 12.0)  # the event came within its window

    uplift = await uplift_of(store, "offer", NOW)
    assert [run.estimate.verdict for run in uplift.runs] == [Verdict.NO_DIFFERENCE, Verdict.OPEN]
    assert uplift.next_close == NOW + 5 * DAY


async def test_a_goal_event_rule_picks_the_events_that_count(store: Store) -> None:
    ids = await add_people(store, [Person(key) for key in "abc"], NOW - 400 * DAY)
    a, b, c = ids["a"], ids["b"], ids["c"]
    rule = 'value >= 25 and attr("sku") != "gift"'
    goal = {**GOAL, "event_rule": rule}
    campaign = await add_campaign(
        store, campaign_spec("big-buys", "all", control=50, goal=goal), NOW
    )
    start = NOW - 10 * DAY
    await add_run(store, campaign, start, {a: "sent", b: "sent", c: "control"})
    await add_events(
        store,
        [
            Happening(a, "purchase", start + DAY, 30.0, {"sku": "shoe"}),
            Happening(a, "purchase", start + 2 * DAY, 20.0, {"sku": "sock"}),  # too small
            Happening(b, "purchase", start + DAY, 80.0, {"sku": "gift"}),  # ruled out
            Happening(c, "purchase", start + DAY, 40.0, {"sku": "hat"}),
        ],
        NOW,
    )
    result = await measured(store, "big-buys", NOW)
    assert result.treated == Arm(2, 1, 30.0)
    assert result.control == Arm(1, 1, 40.0)


async def test_a_goal_without_value_counts_conversions_only(store: Store) -> None:
    ids = await add_people(store, [Person("a")], NOW - 400 * DAY)
    goal = {"event": "login", "within": "1d"}
    campaign = await add_campaign(store, campaign_spec("logins", "all", control=10, goal=goal), NOW)
    await add_run(store, campaign, NOW - 3 * DAY, {ids["a"]: "sent"})
    await add_events(store, [Happening(ids["a"], "login", NOW - 3 * DAY + timedelta(hours=5))], NOW)
    result = await measured(store, "logins", NOW)
    assert result.treated == Arm(1, 1, None)
    assert result.control == Arm(0, 0, None)


async def test_campaigns_sharing_a_goal_are_measured_together_each_on_its_own_runs(
    store: Store,
) -> None:
    ids, offer = await _offer_world(store)
    a, b, c = ids["a"], ids["b"], ids["c"]
    again = await add_campaign(store, campaign_spec("again", "all", control=50, goal=GOAL), NOW)
    quick = {**GOAL, "within": "1d"}
    brief = await add_campaign(store, campaign_spec("brief", "all", control=50, goal=quick), NOW)
    tally_goal = {"event": "purchase", "within": "7d"}  # offer's goal, counted only
    tally = await add_campaign(
        store, campaign_spec("tally", "all", control=50, goal=tally_goal), NOW
    )
    start = NOW - 20 * DAY
    await add_run(store, offer, start, {a: "sent", b: "control"})
    await add_run(store, tally, start, {a: "sent", b: "control"})
    await add_run(store, again, start + 5 * DAY, {a: "sent", c: "sent", b: "control"})
    await add_run(store, brief, start, {a: "sent", c: "control"})
    purchases = [(a, 2 * DAY, 10.0), (b, 6 * DAY, 20.0), (c, 7 * DAY, 40.0), (c, 12 * DAY, 80.0)]
    await add_events(
        store, [Happening(who, "purchase", start + at, v) for who, at, v in purchases], NOW
    )
    together = {
        result.name: result
        for result in await measured_all(store, NOW)  # one call: shared goals read at once
    }
    for name in ("offer", "again", "brief", "tally"):
        alone = await measured(store, name, NOW)
        assert together[name].runs == alone.runs
    # offer's window (0, 7d] holds a's and b's; again's (5d, 12d] holds b's and both of c's
    # (one conversion, both values); brief's (0, 1d] none.
    assert (together["offer"].treated, together["offer"].control) == (
        Arm(1, 1, 10.0),
        Arm(1, 1, 20.0),
    )
    assert together["again"].treated == Arm(2, 1, 120.0)
    assert together["again"].control == Arm(1, 1, 20.0)
    assert together["brief"].treated == Arm(1, 0, 0.0)
    assert (together["tally"].treated, together["tally"].control) == (Arm(1, 1), Arm(1, 1))


async def test_verdicts_for_no_control_no_goal_not_enough_data_and_no_runs(
    store: Store,
) -> None:
    ids = await add_people(store, [Person(f"p{n}") for n in range(30)], NOW - 400 * DAY)
    people = list(ids.values())
    no_control, no_goal, small, _ = [
        await add_campaign(store, campaign_spec(name, "all", **fields), NOW)
        for name, fields in (
            ("no-control", {"control": 0, "goal": GOAL}),
            ("no-goal", {"control": 10}),
            ("small", {"control": 10, "goal": GOAL}),
            ("never-ran", {"control": 10, "goal": GOAL}),
        )
    ]
    start = NOW - 10 * DAY
    await add_run(store, no_control, start, dict.fromkeys(people, "sent"))
    await add_run(store, no_goal, start, dict.fromkeys(people, "sent"))
    await add_run(
        store, small, start, {**dict.fromkeys(people[:27], "sent"), people[27]: "control"}
    )
    await add_events(store, [Happening(person, "purchase", start + DAY) for person in people], NOW)

    unknown = (await uplift_of(store, "no-control", NOW, min_sample_per_arm=1)).estimate
    assert unknown.verdict is Verdict.NO_CONTROL
    assert str(unknown.verdict) == "no control group, uplift unknown"
    assert unknown.absolute is None and unknown.treated == Arm(30, 30, 0.0)
    assert (await uplift_of(store, "no-goal", NOW)).estimate.verdict is Verdict.NO_GOAL
    few = (await uplift_of(store, "small", NOW, min_sample_per_arm=20)).estimate
    assert few.verdict is Verdict.NOT_ENOUGH_DATA and str(few.verdict) == "not enough data"
    assert few.absolute is None and few.p_value is None
    assert (await uplift_of(store, "small", NOW, 1)).estimate.verdict is Verdict.NO_DIFFERENCE
    assert (await uplift_of(store, "never-ran", NOW)).estimate.verdict is Verdict.NO_RUNS


async def test_an_unknown_campaign_is_an_error_naming_close_matches(store: Store) -> None:
    await add_campaign(store, campaign_spec("winback", "all", goal=GOAL), NOW)
    with pytest.raises(CampaignError, match=r"no campaign named `wniback`; did you mean `winback`"):
        await uplift_of(store, "wniback", NOW)
    with pytest.raises(CampaignError, match=r"no campaign named `zzz` \(`cadence report"):
        await uplift_of(store, "zzz", NOW)


async def test_the_planners_control_group_is_the_control_arm(
    store: Store, settings: Settings
) -> None:
    """Through the real planner: its control rows (the hash's pick) are the control arm."""
    program = load_program(DEFAULT_CONFIG_DIR / "program")
    ids = await add_people(store, [Person(f"c{n}") for n in range(60)], NOW - 400 * DAY)
    people = sorted(ids.values())
    await add_segment(store, "everyone", people, NOW)
    spec = campaign_spec("thirty", "everyone", control=30, goal=GOAL)
    await add_campaign(store, spec, NOW - DAY)
    settings.policy.quiet_hours = None
    start = NOW - 20 * DAY
    with clock.using(clock.FixedClock(start)):
        await run_campaign_now(store, program, settings, "thirty", start)
    async with store.transaction() as session:
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.state == "queued").values(state="sent")
        )
    buys = [Happening(person, "purchase", start + DAY, 1.0) for person in people[::2]]
    await add_events(store, buys, NOW)

    result = await measured(store, "thirty", NOW)
    kept = {p for p in people if control_bucket("thirty", p) < control_threshold(30)}
    assert 0 < len(kept) < len(people)
    bought = set(people[::2])
    assert result.control == Arm(len(kept), len(kept & bought), float(len(kept & bought)))
    treated = set(people) - kept
    assert result.treated == Arm(len(treated), len(treated & bought), len(treated & bought))


def test_incremental_revenue_is_absent_without_a_revenue_goal() -> None:
    result = estimate(Arm(500, 50), Arm(500, 25), 100)
    assert result.incremental_revenue is None
    assert result.incremental_conversions == pytest.approx(25.0)
    assert math.isclose(result.absolute or 0, 0.05)
