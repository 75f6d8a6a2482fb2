"""Journeys on SQLite and PostgreSQL: customers walked through the abandoned cart, the
nurture branch and re-entry, tick by tick on a fixed clock, with every send planned through
the contact policy."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from core.db import Store
from core.settings import Settings
from tests.conftest import NOW
from tests.journey_world import World, journey_program
from tests.planner_world import Person, add_people

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
