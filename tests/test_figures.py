"""The figures the scheduler stores for the console (core.figures), on SQLite and
PostgreSQL: what is stored is what core measures and counts, each write replaces the last,
and the migration that adds their tables goes down and up."""

from __future__ import annotations

from datetime import timedelta

from alembic import command
from sqlalchemy import Connection, inspect, select, update

from core import clock
from core.db import Store
from core.figures import (
    UpliftFigure,
    stored_message_counts,
    stored_uplifts,
    write_message_counts,
    write_uplifts,
)
from core.measure.campaign_report import campaign_uplifts
from core.migrations import alembic_config, current_revision, head_revision, upgrade
from core.models import OutboxMessage
from core.overview import message_tallies
from core.planner.launch import run_campaign_now
from core.settings import Settings
from tests.console.world import living_store

CAMPAIGN = "registered-first-purchase"
"""A cycle campaign of the default program with a goal and a control group."""


async def test_the_uplifts_stored_are_the_ones_core_measures(
    store: Store, settings: Settings, frozen_clock: clock.FixedClock
) -> None:
    program = await living_store(store, settings)
    await run_campaign_now(store, program, settings, CAMPAIGN, clock.now())
    frozen_clock.advance(timedelta(days=31))  # the run's goal window has closed
    now = clock.now()
    async with store.reading() as session:
        assert await stored_uplifts(session) == {}
    written = await write_uplifts(store, program, settings, now)
    async with store.reading() as session:
        measured = await campaign_uplifts(
            session, now, settings.measure.min_sample_per_arm, program.params
        )
        stored = await stored_uplifts(session)
        alone = await stored_uplifts(session, CAMPAIGN)
    assert written == {"campaigns": len(measured)}
    assert stored == {uplift.name: UpliftFigure.of(uplift, now) for uplift in measured}
    assert alone == {CAMPAIGN: stored[CAMPAIGN]}
    later = now + timedelta(minutes=15)
    await write_uplifts(store, program, settings, later)
    async with store.reading() as session:
        again = await stored_uplifts(session)
    assert set(again) == set(stored)
    assert {figure.computed_at for figure in again.values()} == {later}


async def test_the_message_counts_stored_are_the_week_by_day_channel_and_state(
    store: Store, settings: Settings, frozen_clock: clock.FixedClock
) -> None:
    program = await living_store(store, settings)
    await run_campaign_now(store, program, settings, CAMPAIGN, clock.now())
    now = clock.now()
    # A third of the messages were due three days ago, a third ten days ago (before the week).
    async with store.transaction() as session:
        for residue, back in ((0, 3), (1, 10)):
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id % 3 == residue)
                .values(due_at=now - timedelta(days=back))
            )
    async with store.reading() as session:
        assert await stored_message_counts(session) is None
        counted = await message_tallies(session, settings, now)
        rows = (
            await session.execute(
                select(OutboxMessage.channel, OutboxMessage.state, OutboxMessage.id)
            )
        ).all()
    expected: dict[tuple[str, str], list[int]] = {}
    for channel, state, number in rows:
        tally = expected.setdefault((channel, state), [0, 0])
        tally[0] += number % 3 == 2
        tally[1] += number % 3 != 1
    assert not counted.stored and counted.counted_at == now
    assert {(t.channel, t.outcome): [t.today, t.week] for t in counted.tallies} == expected
    assert await write_message_counts(store, settings, now) == {
        "messages": sum(week for _, week in expected.values())
    }
    frozen_clock.advance(timedelta(seconds=30))
    async with store.reading() as session:
        stored = await message_tallies(session, settings, clock.now())
    assert stored.stored and stored.counted_at == now
    assert stored.tallies == counted.tallies
    await write_message_counts(store, settings, clock.now())  # replaces the counts whole
    async with store.reading() as session:
        again = await message_tallies(session, settings, clock.now())
    assert again.tallies == counted.tallies and again.counted_at == clock.now()


async def test_the_migration_goes_down_and_up(store: Store) -> None:
    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    figures = {"campaign_uplifts", "message_tallies"}
    try:
        async with store.engine.begin() as connection:
            await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0011"))
        async with store.engine.connect() as connection:
            assert not figures & await connection.run_sync(tables)
        assert await current_revision(store) == "0011"
    finally:
        await upgrade(store)
    async with store.engine.connect() as connection:
        assert figures <= await connection.run_sync(tables)
    assert await current_revision(store) == head_revision()
