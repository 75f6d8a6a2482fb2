"""The dashboard on SQLite and PostgreSQL: the funnel, KPIs against targets, messages,
the scheduler's health; in 80x24 and wider."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from console.screens.dashboard import DashboardScreen
from core.db import Store
from core.settings import Settings
from tests.console.world import console_app, living_store


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
