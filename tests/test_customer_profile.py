"""Finding a customer and reading their profile, on both databases: by either id, by
e-mail in any case, by the start of a name; stage moves, scores, segments, the latest
events and the messages planned for them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.customer_profile import (
    EVENT_WINDOW,
    HISTORY,
    customer_profile,
    find_customers,
)
from core.db import Store
from core.intel.refresh import refresh_intel
from core.models import Campaign, Customer, Event, SegmentMember, StageTransition
from core.settings import Settings
from tests.conftest import NOW
from tests.console.world import living_store
from tests.outbox_world import queue_messages

pytestmark = pytest.mark.usefixtures("frozen_clock")


async def _busiest(store: Store) -> Customer:
    """The customer who moved between stages most often (then the lowest id)."""
    async with store.reading() as session:
        moves = func.count(StageTransition.id)
        busiest = (
            select(StageTransition.customer_id)
            .group_by(StageTransition.customer_id)
            .order_by(moves.desc(), StageTransition.customer_id)
            .limit(1)
        )
        return (
            await session.execute(select(Customer).where(Customer.id == busiest.scalar_subquery()))
        ).scalar_one()


async def test_customers_are_found_by_id_email_or_the_start_of_their_name(
    store: Store, settings: Settings
) -> None:
    await living_store(store, settings, customers=60)
    person = await _busiest(store)
    assert person.email and person.name
    async with store.reading() as session:
        by_external = await find_customers(session, person.external_id)
        by_id = await find_customers(session, str(person.id))
        by_email = await find_customers(session, person.email)
        by_upper_email = await find_customers(session, f"  {person.email.upper()}  ")
        prefix = person.name[:3].lower()
        by_name = await find_customers(session, prefix)
        names = (await session.execute(select(Customer.name))).scalars().all()
        few = await find_customers(session, prefix, limit=1)
        nothing = await find_customers(session, "%")
        blank = await find_customers(session, "   ")
    assert [match.id for match in by_external] == [person.id]
    assert person.id in [match.id for match in by_id]
    assert [match.id for match in by_email] == [match.id for match in by_upper_email] == [person.id]
    assert by_email[0].stage is not None
    expected = sorted(name for name in names if name and name.lower().startswith(prefix))
    assert sorted(match.name or "" for match in by_name) == expected[:20]
    assert len(few) == 1
    assert nothing == [] and blank == []


async def test_a_profile_has_stage_moves_scores_segments_events_and_messages(
    store: Store, settings: Settings
) -> None:
    program = await living_store(
        store, settings, customers=60, refreshed_before=(timedelta(days=60), timedelta(days=20))
    )
    await refresh_intel(store, program, NOW)
    person = await _busiest(store)
    async with store.reading() as session:
        campaign = (await session.execute(select(Campaign.id).limit(1))).scalar_one()
    queued = await queue_messages(store, campaign, [person.id], NOW - timedelta(hours=1))
    async with store.reading() as session:
        profile = await customer_profile(session, person.id)
        moves = (
            (
                await session.execute(
                    select(StageTransition.to_stage)
                    .where(StageTransition.customer_id == person.id)
                    .order_by(StageTransition.at.desc(), StageTransition.id.desc())
                )
            )
            .scalars()
            .all()
        )
        members = (
            await session.execute(
                select(func.count()).where(SegmentMember.customer_id == person.id)
            )
        ).scalar_one()
        events = (
            (await session.execute(select(Event.occurred_at).where(Event.customer_id == person.id)))
            .scalars()
            .all()
        )
        assert await customer_profile(session, 10**9) is None
    assert profile is not None
    assert profile.customer.external_id == person.external_id
    assert [move.to_stage for move in profile.history] == list(moves[:HISTORY])
    assert len(profile.history) >= 2
    assert profile.customer.stage == profile.history[0].to_stage
    assert profile.scores is not None and profile.scores.refreshed_at == NOW
    assert profile.totals is not None and profile.totals.event_count == len(events)
    assert len(profile.segments) == members
    last = max(events)
    window = sorted((at for at in events if at > last - EVENT_WINDOW), reverse=True)
    assert [event.occurred_at for event in profile.events] == window[:HISTORY]
    assert profile.events and profile.events[0].occurred_at == profile.totals.last_event_at
    assert [message.id for message in profile.messages] == queued
    assert profile.messages[0].state == "queued"
    assert profile.consent["email"] == person.consent_email
