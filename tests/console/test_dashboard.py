"""The dashboard on SQLite and PostgreSQL: the funnel, KPIs against targets, messages,
the scheduler's health; in 80x24 and wider."""

from __future__ import annotations

from datetime import timedelta

from textual.widgets import DataTable, Static

from console.screens.dashboard import DashboardScreen
from core import clock
from core.db import Store
from core.figures import write_message_counts
from core.overview import message_tallies
from core.planner.launch import run_campaign_now
from core.settings import Settings
from tests.console.world import console_app, living_store, settle


async def _settled(app: object) -> None:
    """Wait until the screen's load worker has finished."""
    from textual.app import App

    assert isinstance(app, App)
    await app.workers.wait_for_complete()


async def test_the_dashboard_shows_every_stage_with_its_size_and_kpis(
    store: Store, settings: Settings
) -> None:
    program = await living_store(store, settings)
    app = console_app(store, settings, program)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await _settled(app)
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        funnel = screen.query_one("#funnel", DataTable)
        stages = [str(funnel.get_row(key)[0]) for key in funnel.rows]
        assert stages == [stage.name for stage in program.stages]
        sizes = sum(int(str(funnel.get_row(key)[1]).replace(",", "")) for key in funnel.rows)
        assert sizes == 300
        coverage = {str(funnel.get_row(key)[2]) for key in funnel.rows}
        assert coverage - {"-"}, "the snapshot's coverage is shown"
        health = str(screen.query_one("#health", Static).render())
        assert "no leader" in health and "cadence run" in health
        programme = str(screen.query_one("#programme", Static).render())
        assert "automated share" in programme and "KPIs as of" in programme


async def test_the_week_s_messages_are_the_scheduler_s_counts_with_when_it_counted_them(
    store: Store, settings: Settings, frozen_clock: clock.FixedClock
) -> None:
    program = await living_store(store, settings)
    await run_campaign_now(store, program, settings, "registered-first-purchase", clock.now())
    counted_at = clock.now()
    await write_message_counts(store, settings, counted_at)
    async with store.reading() as session:
        counted = await message_tallies(session, settings, counted_at)
    frozen_clock.advance(timedelta(minutes=1))
    app = console_app(store, settings, program)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        table = screen.query_one("#messages", DataTable)
        shown = [[str(cell) for cell in table.get_row(key)] for key in table.rows]
        assert shown == [
            [t.channel, t.outcome, f"{t.today:,}", f"{t.week:,}"] for t in counted.tallies
        ]
        assert counted.tallies, "the run queued messages"
        title = str(screen.query_one("#messages-title", Static).render())
        assert title.endswith(f"counted {counted_at.astimezone(settings.zone):%m-%d %H:%M}")
