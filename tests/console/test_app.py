"""The console as a whole: every screen by its key and from the command palette, the help,
read-only for on-call staff and for operators who may not launch, a terminal too small."""

from __future__ import annotations

import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import Static

from console.app import SCREENS, CadenceConsole
from console.context import ConsoleContext
from console.screens.help import HelpScreen
from console.screens.too_small import TooSmallScreen
from core.db import Store
from core.settings import Settings
from tests.console.world import console_app, default_program, living_store

# On the pinned clock every test shares one living store per database (it is kept by the
# moment it was built for) instead of building its own as of the wall clock's now.
pytestmark = pytest.mark.usefixtures("frozen_clock")


async def _settle(app: CadenceConsole) -> None:
    await app.workers.wait_for_complete()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_every_screen_answers_its_key(store: Store, settings: Settings) -> None:
    program = await living_store(store, settings)
    app = console_app(store, settings, program)
    async with app.run_test(size=(80, 24)) as pilot:
        for entry in SCREENS:
            await pilot.press("escape", entry.key)  # out of a search field first
            await pilot.pause()
            await _settle(app)
            assert app.current_mode == entry.mode
            assert type(app.screen).__name__ == entry.screen.split(":")[1]
            assert not app.screen.query("#database-banner")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_command_palette_opens_screens_by_name(store: Store, settings: Settings) -> None:
    program = await living_store(store, settings)
    app = console_app(store, settings, program)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        while not isinstance(app.screen, CommandPalette):
            await pilot.pause(0.05)
        await pilot.press(*"Segments")
        commands = app.screen.query_one(CommandList)
        for _ in range(100):
            if commands.option_count == 1:
                break
            await pilot.pause(0.05)
        assert str(commands.get_option_at_index(0).prompt).startswith("Segments")
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_mode == "segments"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_read_only_hides_every_action(store: Store, settings: Settings) -> None:
    program = await living_store(store, settings)
    app = console_app(store, settings, program, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.sub_title == "read-only"
        assert "launch" not in {entry.mode for entry in app.entries}
        await pilot.press("l")  # not bound: nothing happens
        await pilot.pause()
        assert app.current_mode == "dashboard"
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = " ".join(str(widget.render()) for widget in app.screen.query(Static))
        assert "read-only" in shown and "Launch" not in shown


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no store is opened
def test_operators_not_among_the_launchers_get_the_read_only_console(
    settings: Settings,
) -> None:
    settings.console.launchers = ["ana"]
    program = default_program()
    store = Store.__new__(Store)  # never opened: the context only decides who may act
    assert ConsoleContext(store, settings, program, actor="ana").read_only is False
    assert ConsoleContext(store, settings, program, actor="rui").read_only is True
    assert ConsoleContext(store, settings, program, actor="ana", read_only_asked=True).read_only


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_terminal_too_small_says_how_big_it_must_be(
    store: Store, settings: Settings
) -> None:
    program = await living_store(store, settings)
    app = console_app(store, settings, program)
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, TooSmallScreen)
        message = str(app.screen.query_one("#too-small", Static).render())
        assert "60x20" in message and "80x24" in message
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        assert not isinstance(app.screen, TooSmallScreen)
