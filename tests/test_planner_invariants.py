"""The planner's invariants, on both databases, over generated worlds and several ticks.

Each example builds customers (addresses, consents, time zones, suppressions),
segments and campaigns, then plans a few ticks at increasing times through
the real code path (pending runs, :func:`core.planner.runs.plan_runs`). Every
tick must match the Python reference of the policy exactly (``policy_reference``:
same inputs and clock, same plan), and the stored outcome must keep the
invariants: caps never exceeded, cooldowns kept, control members never sent,
suppressed or non-consenting customers never queued, every targeted customer
in exactly one outcome.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from config import DEFAULT_CONFIG_DIR
from core.campaigns import store_campaign
from core.db import Store
from core.durations import parse_duration
from core.models import (
    Campaign,
    CampaignRun,
    Customer,
    OutboxMessage,
    Segment,
    SegmentMember,
    Suppression,
)
from core.planner.runs import plan_runs, request_run
from core.policy import Outcome
from core.program import load_program
from core.settings import PolicySettings, Settings
from tests import policy_reference as reference
from tests.planner_world import campaign_spec

START = datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
ZONES = [None, "UTC", "Europe/Lisbon", "America/New_York", "Asia/Tokyo", "Not/A_Zone"]
PROGRAM = load_program(DEFAULT_CONFIG_DIR / "program")

people = st.lists(
    st.tuples(
        st.booleans() | st.just(True),  # has an address
        st.sampled_from([True, True, False, None]),
        st.sampled_from(ZONES),
        st.sampled_from([None, None, None, "unsubscribed", "hard_bounce"]),
    ),
    min_size=1,
    max_size=12,
)
campaigns = st.lists(
    st.tuples(
        st.integers(0, 2),  # segment
        st.sampled_from([10, 50, 50, 90]),
        st.sampled_from([True, True, True, False]),  # marketing
        st.sampled_from([0.0, 10.0, 50.0, 100.0]),
        st.sampled_from([None, "1d", "3d"]),
        st.integers(1, 3),  # variants
    ),
    min_size=1,
    max_size=4,
)
worlds = st.fixed_dictionaries(
    {
        "people": people,
        "members": st.lists(st.sets(st.integers(0, 11)), min_size=3, max_size=3),
        "campaigns": campaigns,
        "max_per_day": st.integers(1, 2),
        "max_per_week": st.integers(1, 4),
        "quiet_hours": st.sampled_from([None, "21:00-08:00", "22:00-07:00"]),
        "ticks": st.lists(
            st.tuples(st.integers(0, 240), st.sets(st.integers(0, 3), min_size=1)),
            min_size=1,
            max_size=4,
        ),
    }
)


@given(world=worlds)
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    # The store is shared by the examples; each example deletes what it wrote.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_the_planner_matches_the_policy_and_keeps_its_invariants(
    store: Store, settings: Settings, world: dict[str, Any]
) -> None:
    policy = PolicySettings(
        max_per_day=world["max_per_day"],
        max_per_week=world["max_per_week"],
        quiet_hours=world["quiet_hours"],
    )
    tuned = settings.model_copy(update={"policy": policy})
    try:
        await _check_world(store, tuned, world)
    finally:
        async with store.transaction() as session:
            for table in (Campaign, Segment, Customer, Suppression):
                await session.execute(delete(table))


async def _check_world(store: Store, settings: Settings, world: dict[str, Any]) -> None:
    customers, specs = await _build(store, world)
    history = reference.History()
    ticks = sorted(world["ticks"])
    for number, (hours, chosen) in enumerate(ticks):
        now = START + timedelta(hours=hours, minutes=number)
        picked = [specs[index] for index in sorted(chosen) if index < len(specs)]
        if not picked:
            continue
        async with store.transaction() as session:
            stored = {
                c.name: c
                for c in (await session.execute(select(Campaign))).scalars()
                if c.name in {campaign.name for campaign, _ in picked}
            }
            run_ids = [
                await request_run(session, stored[c.name], f"tick-{number}", "manual", now)
                for c, _ in picked
            ]
        planned = await plan_runs(store, PROGRAM, settings, now, run_ids)
        expected = reference.plan(
            customers,
            [campaign for campaign, _ in picked],
            history,
            max_per_day=settings.policy.max_per_day,
            max_per_week=settings.policy.max_per_week,
            quiet=settings.policy.quiet,
            zone=settings.zone,
            now=now,
        )
        for run in planned:
            wanted: dict[Outcome, int] = defaultdict(int)
            for outcome in expected.outcomes[run.plan.campaign].values():
                wanted[outcome] += 1
            assert run.plan.outcomes == dict(wanted), run.plan.campaign
            assert run.plan.lost_to == expected.lost_to[run.plan.campaign]
            audience = next(c.audience for c, _ in picked if c.name == run.plan.campaign)
            assert run.plan.targeted == len(audience)
        assert sorted(await _messages(store), key=_order) == sorted(history.messages, key=_order)
    await _check_invariants(store, settings, customers, specs)


def _order(message: reference.Message) -> tuple[str, int, datetime]:
    return (message.campaign, message.customer, message.due)


async def _build(
    store: Store, world: dict[str, Any]
) -> tuple[dict[int, reference.Customer], list[tuple[reference.Campaign, int]]]:
    async with store.transaction() as session:
        rows = [
            {
                "external_id": f"p{index}",
                "email": f"p{index}@example.com" if has_address else None,
                "consent_email": consent,
                "time_zone": zone,
                "registered_at": START,
                "attributes": {},
                "created_at": START,
                "updated_at": START,
            }
            for index, (has_address, consent, zone, _) in enumerate(world["people"])
        ]
        ids = list((await session.execute(insert(Customer).returning(Customer.id), rows)).scalars())
        customers = {}
        for customer_id, (has_address, consent, zone, reason) in zip(
            ids, world["people"], strict=True
        ):
            email = f"p{ids.index(customer_id)}@example.com" if has_address else None
            if reason is not None and email is not None:
                session.add(
                    Suppression(channel="email", address=email, reason=reason, created_at=START)
                )
            customers[customer_id] = reference.Customer(
                customer_id, email, consent, zone, reason if email else None
            )
        members: list[frozenset[int]] = []
        for number, chosen in enumerate(world["members"]):
            audience = frozenset(ids[index] for index in chosen if index < len(ids))
            members.append(audience)
            segment = Segment(
                name=f"s{number}",
                description="",
                rule="true",
                tags=[],
                created_at=START,
                updated_at=START,
            )
            session.add(segment)
            await session.flush()
            session.add_all(
                SegmentMember(segment_id=segment.id, customer_id=customer_id, entered_at=START)
                for customer_id in audience
            )
        specs = []
        for number, (segment, priority, marketing, control, cooldown, variants) in enumerate(
            world["campaigns"]
        ):
            spec = campaign_spec(
                f"c{number}",
                f"s{segment}",
                priority=priority,
                category="marketing" if marketing else "transactional",
                control=control,
                cooldown=cooldown,
                variants=[f"v{n}" for n in range(variants)],
            )
            campaign = store_campaign(session, spec, origin="program", now=START)
            await session.flush()
            campaign_id = campaign.id
            specs.append(
                (
                    reference.Campaign(
                        spec.name,
                        members[segment],
                        priority,
                        marketing,
                        control,
                        None if cooldown is None else parse_duration(cooldown),
                        tuple(spec.variants),
                    ),
                    campaign_id,
                )
            )
        await session.flush()
    return customers, specs


async def _messages(store: Store) -> list[reference.Message]:
    async with store.reading() as session:
        rows = await session.execute(
            select(OutboxMessage, Campaign.name).join(
                Campaign, Campaign.id == OutboxMessage.campaign_id
            )
        )
        return [
            reference.Message(
                name,
                row.customer_id,
                row.due_at,
                row.category == "marketing",
                row.state,
                row.variant,
            )
            for row, name in rows
        ]


async def _check_invariants(
    store: Store,
    settings: Settings,
    customers: dict[int, reference.Customer],
    specs: list[tuple[reference.Campaign, int]],
) -> None:
    messages = await _messages(store)
    policy = settings.policy
    by_customer: dict[int, list[datetime]] = defaultdict(list)
    for message in messages:
        if message.marketing:
            by_customer[message.customer].append(message.due)
    for dues in by_customer.values():
        for start in dues:
            assert sum(start <= due < start + reference.DAY for due in dues) <= policy.max_per_day
            assert sum(start <= due < start + reference.WEEK for due in dues) <= (
                policy.max_per_week
            )
    cooldowns = {campaign.name: campaign.cooldown for campaign, _ in specs}
    contacts: dict[tuple[str, int], list[datetime]] = defaultdict(list)
    for message in messages:
        contacts[(message.campaign, message.customer)].append(message.due)
    for (campaign, _), dues in contacts.items():
        cooldown = cooldowns[campaign]
        if cooldown is not None:
            dues.sort()
            assert all(later - earlier >= cooldown for earlier, later in itertools.pairwise(dues))
    arms: dict[tuple[str, int], set[str]] = defaultdict(set)
    for message in messages:
        arms[(message.campaign, message.customer)].add(message.state)
    assert all(len(states) == 1 for states in arms.values()), "a customer changed arms"
    for message in messages:
        if message.state != "queued":
            continue
        customer = customers[message.customer]
        assert customer.email, "queued without an address"
        hard = customer.suppression is not None and customer.suppression != "unsubscribed"
        assert not hard, "queued to a suppressed address"
        if message.marketing:
            assert customer.consent_email is True and customer.suppression is None
    async with store.reading() as session:
        runs = (await session.execute(select(CampaignRun))).scalars().all()
        counts: dict[int, int] = defaultdict(int)
        for row in (await session.execute(select(OutboxMessage.run_id))).scalars():
            counts[row] += 1
    for run in runs:
        assert run.status == "planned"
        assert run.targeted == sum(run.outcomes["counts"].values())
        assert counts[run.id] == run.queued + run.held + run.control
