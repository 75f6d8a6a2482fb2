"""Journeys on SQLite and PostgreSQL: customers walked through the abandoned cart, the
nurture branch and re-entry, tick by tick on a fixed clock, with every send planned through
the contact policy."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from core.db import Store
from core.models import CustomerStage, Segment, SegmentChange, StageTransition
from core.settings import Settings
from tests.conftest import NOW
from tests.journey_world import World, journey_program
from tests.planner_world import Person, add_people, add_segment

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
START = NOW.replace(hour=9)

CART = (
    "[[journey]]\n"
    'name = "cart"\n'
    'entry = { event = "cart_add" }\n'
    'exit_goal = { event = "purchase" }\n'
    "control = 0\n"
    "steps = [\n"
    '  { id = "wait-purchase", wait_until = { event = "purchase", timeout = "1h" },'
    ' on_event = "exit", on_timeout = "remind" },\n'
    '  { id = "remind", send = "welcome" },\n'
    '  { wait = "1d" },\n'
    '  { id = "recommend", send = "offer_a" },\n'
    "]\n"
)


async def _world(store: Store, settings: Settings, tmp_path: Path, journeys: str) -> World:
    settings.policy.quiet_hours = None
    return World(store, journey_program(tmp_path, journeys), settings)


async def test_abandoned_cart_reminds_after_an_hour_and_a_purchase_exits(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    world = await _world(store, settings, tmp_path, CART)
    ids = await add_people(store, [Person("ann"), Person("bob"), Person("cat")], START)
    ann, bob, cat = ids["ann"], ids["bob"], ids["cat"]
    first = await world.tick(START)
    assert first.entered == 0 and first.journeys == 1

    await world.event(ann, "cart_add", START + 1 * MINUTE)
    await world.event(bob, "cart_add", START + 2 * MINUTE)
    await world.event(cat, "cart_add", START + 3 * MINUTE)
    await world.event(cat, "purchase", START + 4 * MINUTE)
    tick = await world.tick(START + 5 * MINUTE)
    assert tick.entered == 3 and tick.exited == 1 and tick.sent == 0
    states = await world.states("cart")
    assert states[ann] == ("wait-purchase", "active", None, 1)
    assert states[cat][1:3] == ("exited", "goal reached")

    # Just before the hour is up for ann, nothing is sent.
    assert (await world.tick(START + 1 * MINUTE + HOUR - timedelta(seconds=1))).sent == 0
    assert await world.outbox("journey-cart-remind") == {}
    tick = await world.tick(START + HOUR + 2 * MINUTE)
    assert tick.queued == 2 and tick.moved == 4  # two reminders, then on to the wait
    assert await world.outbox("journey-cart-remind") == {ann: "queued", bob: "queued"}
    [run] = await world.runs("journey-cart-remind")
    assert (run.occasion, run.status, run.targeted, run.queued) == ("journey", "planned", 2, 2)

    # bob buys during the day's wait: the exit goal ends his pass, no recommendation.
    await world.event(bob, "purchase", START + 3 * HOUR)
    assert (await world.tick(START + 3 * HOUR + MINUTE)).exited == 1
    tick = await world.tick(START + DAY + HOUR + 5 * MINUTE)
    assert tick.queued == 1 and tick.completed == 1
    assert await world.outbox("journey-cart-remind") == {ann: "queued", bob: "queued"}
    assert await world.outbox("journey-cart-recommend") == {ann: "queued"}
    states = await world.states("cart")
    assert states[ann] == ("recommend", "completed", None, 1)
    assert states[bob][1:3] == ("exited", "goal reached")
    # Ticking again at the same moment changes nothing.
    again = await world.tick(START + DAY + HOUR + 5 * MINUTE)
    assert (again.entered, again.moved, again.sent, again.completed) == (0, 0, 0, 0)


NURTURE = (
    "[[journey]]\n"
    'name = "nurture"\n'
    'entry = { segment = "value-high" }\n'
    "control = 0\n"
    "steps = [\n"
    '  { id = "intro", send = "welcome" },\n'
    '  { id = "opened", wait_until = { event = "message_opened", of_step = "intro",'
    ' timeout = "3d" }, on_event = "path-a", on_timeout = "path-b" },\n'
    '  { id = "path-a", send = "offer_a", next = "complete" },\n'
    '  { id = "path-b", send = "offer_b" },\n'
    "]\n"
)


async def _enter_segment(store: Store, segment: str, customers: list[int], at: datetime) -> None:
    """Record ``customers`` entering ``segment`` at ``at``, as a segment refresh does."""
    async with store.transaction() as session:
        segment_id = await session.scalar(select(Segment.id).where(Segment.name == segment))
        await session.execute(
            insert(SegmentChange),
            [
                {"segment_id": segment_id, "customer_id": c, "entered": True, "at": at}
                for c in customers
            ],
        )


async def test_nurture_opened_goes_to_path_a_and_ignored_for_three_days_to_path_b(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    world = await _world(store, settings, tmp_path, NURTURE)
    settings.policy.max_per_day = 5
    ids = await add_people(store, [Person("opener"), Person("ignorer")], START)
    opener, ignorer = ids["opener"], ids["ignorer"]
    await add_segment(store, "value-high", [], START)
    await world.tick(START)
    await _enter_segment(store, "value-high", [opener, ignorer], START + MINUTE)
    tick = await world.tick(START + 2 * MINUTE)
    assert (tick.entered, tick.queued) == (2, 2)
    assert await world.outbox("journey-nurture-intro") == {opener: "queued", ignorer: "queued"}

    # Only an open of the intro counts; the ignorer opened some other campaign's message.
    await world.event(ignorer, "message_opened", START + HOUR, campaign="active-hv-monthly-offer")
    await world.event(opener, "message_opened", START + 5 * HOUR, campaign="journey-nurture-intro")
    tick = await world.tick(START + 5 * HOUR + MINUTE)
    assert (tick.queued, tick.completed) == (1, 1)
    assert await world.outbox("journey-nurture-path-a") == {opener: "queued"}
    assert (await world.states("nurture"))[ignorer][:2] == ("opened", "active")

    assert (await world.tick(START + 3 * DAY)).sent == 0  # the three days end at +3d 2m
    tick = await world.tick(START + 3 * DAY + 3 * MINUTE)
    assert (tick.queued, tick.completed) == (1, 1)
    assert await world.outbox("journey-nurture-path-b") == {ignorer: "queued"}
    assert await world.outbox("journey-nurture-path-a") == {opener: "queued"}
    states = await world.states("nurture")
    assert states[opener][:2] == ("path-a", "completed")
    assert states[ignorer][:2] == ("path-b", "completed")


async def test_caps_and_consent_stop_journey_sends_and_each_refusal_is_recorded(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """One marketing message a day: the opener's path A the same day is capped; a customer
    without e-mail consent gets nothing. Both still go through the journey."""
    world = await _world(store, settings, tmp_path, NURTURE)
    assert settings.policy.max_per_day == 1
    people = [Person("opener"), Person("refuser", consent_email=False)]
    ids = await add_people(store, people, START)
    opener, refuser = ids["opener"], ids["refuser"]
    await add_segment(store, "value-high", [], START)
    await world.tick(START)
    await _enter_segment(store, "value-high", [opener, refuser], START + MINUTE)
    tick = await world.tick(START + 2 * MINUTE)
    assert (tick.entered, tick.queued, tick.excluded) == (2, 1, 1)
    [intro] = await world.runs("journey-nurture-intro")
    assert intro.outcomes["counts"] == {"queued": 1, "no_consent": 1}
    assert await world.outbox("journey-nurture-intro") == {opener: "queued"}

    await world.event(opener, "message_opened", START + HOUR, campaign="journey-nurture-intro")
    tick = await world.tick(START + HOUR + MINUTE)
    assert (tick.queued, tick.excluded, tick.completed) == (0, 1, 1)
    [path_a] = await world.runs("journey-nurture-path-a")
    assert (path_a.targeted, path_a.excluded, path_a.outcomes["counts"]) == (1, 1, {"capped": 1})
    assert await world.outbox("journey-nurture-path-a") == {}

    tick = await world.tick(START + 3 * DAY + 3 * MINUTE)
    [path_b] = await world.runs("journey-nurture-path-b")
    assert path_b.outcomes["counts"] == {"no_consent": 1}
    assert (await world.states("nurture"))[refuser][:2] == ("path-b", "completed")


REENTRY = CART.replace('exit_goal = { event = "purchase" }\n', "").replace(
    'name = "cart"\n', 'name = "cart"\nreentry = { after = "2d", max_entries = 2 }\n'
)


async def test_reentry_after_the_pass_ended_the_wait_and_up_to_the_maximum(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    world = await _world(store, settings, tmp_path, REENTRY)
    ids = await add_people(store, [Person("ann")], START)
    ann = ids["ann"]
    await world.tick(START)
    await world.event(ann, "cart_add", START + MINUTE)
    await world.event(ann, "purchase", START + 2 * MINUTE)
    assert (await world.tick(START + 3 * MINUTE)).exited == 1
    assert (await world.states("cart"))[ann] == (
        "wait-purchase",
        "exited",
        "wait-purchase: on_event",
        1,
    )

    # Ended, but entered less than two days ago: a new cart add does not start a pass.
    await world.event(ann, "cart_add", START + DAY)
    assert (await world.tick(START + DAY + MINUTE)).entered == 0
    # Two days on, it does: the second pass, and the last one allowed.
    await world.event(ann, "cart_add", START + 2 * DAY + HOUR)
    tick = await world.tick(START + 2 * DAY + HOUR + MINUTE)
    assert tick.entered == 1
    assert (await world.states("cart"))[ann] == ("wait-purchase", "active", None, 2)
    # While a pass runs, another cart add changes nothing.
    await world.event(ann, "cart_add", START + 2 * DAY + HOUR + 2 * MINUTE)
    assert (await world.tick(START + 2 * DAY + HOUR + 3 * MINUTE)).entered == 0
    await world.event(ann, "purchase", START + 2 * DAY + 2 * HOUR)
    await world.tick(START + 2 * DAY + 2 * HOUR + MINUTE)
    await world.event(ann, "cart_add", START + 9 * DAY)
    assert (await world.tick(START + 9 * DAY + MINUTE)).entered == 0
    assert (await world.states("cart"))[ann][1:] == ("exited", "wait-purchase: on_event", 2)


async def test_a_journey_without_reentry_takes_a_customer_once(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    world = await _world(store, settings, tmp_path, CART)
    ann = (await add_people(store, [Person("ann")], START))["ann"]
    await world.tick(START)
    await world.event(ann, "cart_add", START + MINUTE)
    await world.event(ann, "purchase", START + 2 * MINUTE)
    await world.tick(START + 3 * MINUTE)
    await world.event(ann, "cart_add", START + 30 * DAY)
    assert (await world.tick(START + 30 * DAY + MINUTE)).entered == 0


async def _place(store: Store, stage: str, customers: list[int], at: datetime) -> None:
    """Put ``customers`` in ``stage`` at ``at``, recorded as a stage refresh records it."""
    async with store.transaction() as session:
        for customer in customers:
            current = await session.get(CustomerStage, customer)
            if current is None:
                session.add(CustomerStage(customer_id=customer, stage=stage, entered_at=at))
            else:
                current.stage, current.entered_at = stage, at
        rows = [{"customer_id": c, "to_stage": stage, "at": at} for c in customers]
        await session.execute(insert(StageTransition), rows)


async def test_the_default_welcome_series_starts_on_stage_entry_and_ends_with_the_stage(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    settings.policy.quiet_hours = None
    world = World(store, journey_program(tmp_path), settings)
    ids = list((await add_people(store, [Person(f"c{i}") for i in range(20)], START)).values())
    await world.tick(START)
    await _place(store, "new", ids, START + MINUTE)
    tick = await world.tick(START + 2 * MINUTE)
    assert tick.entered == 20 and tick.queued + tick.control == 20 and tick.control > 0
    sent = await world.outbox("journey-welcome-series-onboarding-01")
    assert sorted(sent) == sorted(ids) and set(sent.values()) == {"queued", "control"}
    tick = await world.tick(START + DAY + 3 * MINUTE)
    assert tick.queued + tick.control == 20
    assert len(await world.outbox("journey-welcome-series-onboarding-02")) == 20

    await _place(store, "active", ids[:5], START + 2 * DAY)
    tick = await world.tick(START + 2 * DAY + MINUTE)
    assert tick.exited == 5
    states = await world.states("welcome-series")
    assert {states[c][1:3] for c in ids[:5]} == {("exited", "goal reached")}
    assert {states[c][:2] for c in ids[5:]} == {("step-4", "active")}


async def test_an_entry_committed_after_the_tick_that_should_have_seen_it_still_enrols(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    # A refresh stamps its stage moves with the moment it started and commits them
    # later; a journey tick that ran in between must not lose them, nor count them twice.
    settings.policy.quiet_hours = None
    world = World(store, journey_program(tmp_path), settings)
    ids = list((await add_people(store, [Person(f"c{i}") for i in range(4)], START)).values())
    await world.tick(START)
    assert (await world.tick(START + 2 * MINUTE)).entered == 0
    await _place(store, "new", ids, START + MINUTE)  # started before that tick, committed after
    assert (await world.tick(START + 3 * MINUTE)).entered == 4
    assert (await world.tick(START + 4 * MINUTE)).entered == 0
    assert {state[1] for state in (await world.states("welcome-series")).values()} == {"active"}


async def test_a_refused_entry_read_again_does_not_hide_a_later_one(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    world = await _world(store, settings, tmp_path, REENTRY.replace('"2d"', '"1m"'))
    ann = (await add_people(store, [Person("ann")], START))["ann"]
    await world.tick(START)
    await world.event(ann, "cart_add", START + MINUTE)
    assert (await world.tick(START + 2 * MINUTE)).entered == 1
    await world.event(ann, "cart_add", START + 3 * MINUTE)  # the pass still runs: refused
    await world.event(ann, "purchase", START + 4 * MINUTE)
    assert (await world.tick(START + 5 * MINUTE)).exited == 1
    # Both cart adds are still in the window; only the one after the pass ended counts.
    await world.event(ann, "cart_add", START + 6 * MINUTE)
    assert (await world.tick(START + 7 * MINUTE)).entered == 1
    assert (await world.states("cart"))[ann] == ("wait-purchase", "active", None, 2)


async def test_the_default_reactivation_branches_on_a_recent_open(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    settings.policy.quiet_hours = None
    world = World(store, journey_program(tmp_path), settings)
    people = [Person(f"c{i}") for i in range(10)]
    ids = list((await add_people(store, people, START)).values())
    await world.tick(START)
    await _place(store, "inactive", ids, START + MINUTE)
    await world.tick(START + 2 * MINUTE)
    for customer in ids[:4]:
        await world.event(customer, "message_opened", START + 3 * DAY, campaign="any")
    await world.tick(START + 7 * DAY + 3 * MINUTE)
    states = await world.states("reactivation")
    assert {states[c][:2] for c in ids[:4]} == {("offer", "completed")}
    assert {states[c][:2] for c in ids[4:]} == {("wait-last-call", "active")}
    [offer] = await world.runs("journey-reactivation-offer")
    assert offer.targeted == 4
