"""What showing a screen again costs: each screen is built once and styled once, its footer
is built again only when the keys it shows change, a table refilled with the same rows
keeps its rows, and what takes long to read (the campaigns' uplift, the week's messages)
is read again only when it is old or the operator reloads."""

from __future__ import annotations

from typing import Any

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable
from textual.widgets._footer import FooterKey

import console.screens.campaigns as campaigns_screen
import core.overview
from console.app import CadenceConsole
from console.widgets.tables import refill
from core.db import Store
from core.measure import campaign_report
from core.settings import Settings
from tests.console.world import console_app, default_program, settle


async def _visit(app: CadenceConsole, pilot: Any, key: str) -> None:
    await pilot.press("escape", key)  # out of a search field first
    await settle(app, pilot)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_screens_are_built_and_styled_once(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = console_app(store, settings, default_program())
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        reparsed: list[None] = []
        reparse = app.stylesheet.reparse
        monkeypatch.setattr(app.stylesheet, "reparse", lambda: reparsed.append(reparse()))
        for entry in app.entries:  # every screen shown for the first time
            await _visit(app, pilot, entry.key)
        assert not reparsed, "showing a new screen parsed the stylesheets again"
        # The screens without a text field, whose focus stays where it is between visits.
        steady = [entry for entry in app.entries if entry.mode not in ("launch", "customers")]
        shown = {}
        for entry in steady:
            await pilot.press(entry.key)
            await settle(app, pilot)
            shown[entry.mode] = (app.screen, list(app.screen.query(FooterKey)))
        for entry in steady:
            await pilot.press(entry.key)
            await settle(app, pilot)
            screen, keys = shown[entry.mode]
            assert app.screen is screen
            assert list(screen.query(FooterKey)) == keys, f"{entry.mode}: footer built again"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_footer_follows_the_keys_it_shows(store: Store, settings: Settings) -> None:
    app = console_app(store, settings, default_program())
    async with app.run_test(size=(160, 48)) as pilot:
        await _visit(app, pilot, "u")
        keys = [key.key for key in app.screen.query(FooterKey)]
        assert "p" not in keys  # in the search field, which takes the letters
        await pilot.press("escape")  # out of it: the screen's keys are offered
        await settle(app, pilot)
        assert "p" in [key.key for key in app.screen.query(FooterKey)]


class _Table(App[None]):
    def compose(self) -> ComposeResult:
        yield DataTable()


async def test_a_refill_with_the_same_rows_changes_only_their_cells() -> None:
    app = _Table()
    async with app.run_test() as pilot:
        table = app.query_one(DataTable)
        table.add_columns("name", "state")
        refill(table, [("a", ["a", Text("sent", "green")]), ("b", ["b", "queued"])])
        table.move_cursor(row=1)
        rows = dict(table.rows)
        refill(table, [("a", ["a", Text("sent", "red")]), ("b", ["b", "sent"])])
        await pilot.pause()
        assert dict(table.rows) == rows  # the same rows, not new ones
        assert table.get_row("a")[1].style == "red"
        assert table.get_row("b") == ["b", "sent"]
        assert table.cursor_row == 1
        refill(table, [("c", ["c", "failed"]), ("b", ["b", "sent"])])
        assert [row.key.value for row in table.ordered_rows] == ["c", "b"]
        assert table.cursor_row == 1  # still on b


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_slow_figures_are_read_again_when_old_or_asked_for(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"uplifts": 0, "messages": 0}

    def counted(name: str, function: Any) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return await function(*args, **kwargs)

        return call

    uplifts = counted("uplifts", campaign_report.campaign_uplifts)
    monkeypatch.setattr(campaigns_screen, "campaign_uplifts", uplifts)
    messages = counted("messages", core.overview.message_tallies)
    monkeypatch.setattr(core.overview, "message_tallies", messages)
    app = console_app(store, settings, default_program())
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        for key in ("c", "d", "c", "d"):
            await _visit(app, pilot, key)
        assert calls == {"uplifts": 1, "messages": 1}
        await pilot.press("r")  # the operator's reload reads everything again
        await settle(app, pilot)
        await _visit(app, pilot, "c")
        await pilot.press("r")
        await settle(app, pilot)
        assert calls == {"uplifts": 2, "messages": 2}
