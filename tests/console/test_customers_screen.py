"""The customer explorer on SQLite and PostgreSQL: a search by e-mail or name, the profile
of the customer chosen (stage history, scores, segments, events, messages) and the
per-stage behaviour panels; in 80x24."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static, TabbedContent

from console.app import CadenceConsole
from console.screens.customers import CustomersScreen
from core.customer_profile import customer_profile, find_customers
from core.db import Store
from core.explore import stage_profiles
from core.intel.refresh import refresh_intel
from core.models import Campaign
from core.settings import Settings
from tests.conftest import NOW
from tests.console.world import column, console_app, living_store, settle, show
from tests.outbox_world import queue_messages

pytestmark = pytest.mark.usefixtures("frozen_clock")


async def _search(app: CadenceConsole, pilot: Pilot[None], text: str) -> None:
    """Go to the search field, put ``text`` in and press Enter."""
    await pilot.press("slash")
    app.screen.query_one("#search", Input).value = text
    await pilot.press("enter")
    await settle(app, pilot)


async def test_find_a_customer_and_read_their_profile(store: Store, settings: Settings) -> None:
    program = await living_store(
        store, settings, customers=60, refreshed_before=(timedelta(days=30),)
    )
    await refresh_intel(store, program, NOW)
    async with store.reading() as session:
        [person] = await find_customers(session, "C0000007")
        campaign = (await session.execute(select(Campaign.id).limit(1))).scalar_one()
    await queue_messages(store, campaign, [person.id], NOW)
    async with store.reading() as session:
        profile = await customer_profile(session, person.id)
    assert profile is not None and person.email and person.name
    app = console_app(store, settings, program)
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot, "u")
        screen = app.screen
        assert isinstance(screen, CustomersScreen)
        matches = screen.query_one("#matches", DataTable)

        await _search(app, pilot, person.name[:2].lower())
        assert len(column(matches, 0)) > 1
        assert all(name.lower().startswith(person.name[:2].lower()) for name in column(matches, 2))

        await _search(app, pilot, "nobody-at-all@example.invalid")
        assert matches.row_count == 0
        assert "nobody matches" in str(screen.query_one("#matches-note", Static).render())

        await _search(app, pilot, person.email.upper())
        assert column(matches, 1) == [person.external_id]
        await pilot.press("enter")
        await settle(app, pilot)
        assert screen.query_one(TabbedContent).active == "profile-tab"
        head = str(screen.query_one("#profile-head", Static).render())
        assert person.name in head and person.external_id in head and person.email in head
        assert f"stage {profile.customer.stage}" in head
        scores = str(screen.query_one("#profile-scores", Static).render())
        assert "CLV 12 months" in scores and "P(alive)" in scores and "RFM" in scores
        assert profile.scores is not None and profile.scores.p_alive is not None
        assert f"P(alive) {profile.scores.p_alive:.0%}" in scores
        stages = screen.query_one("#profile-stages", DataTable)
        assert column(stages, 2) == [move.to_stage for move in profile.history]
        segments = str(screen.query_one("#profile-segments", Static).render())
        assert all(membership.segment in segments for membership in profile.segments)
        events = screen.query_one("#profile-events", DataTable)
        assert column(events, 1) == [event.type for event in profile.events]
        messages = screen.query_one("#profile-messages", DataTable)
        assert column(messages, 3) == ["queued"]

        await pilot.press("b")
        await settle(app, pilot)
        assert screen.query_one(TabbedContent).active == "behaviour-tab"
        async with store.reading() as session:
            expected = await stage_profiles(session, NOW)
        table = screen.query_one("#stage-profiles", DataTable)
        assert column(table, 0) == [row.stage for row in expected]
        assert screen.query_one("#categories", DataTable).row_count > 0
        assert screen.query_one("#retention", DataTable).row_count > 0

        await pilot.press("p")
        await pilot.pause()
        assert screen.query_one(TabbedContent).active == "profile-tab"
