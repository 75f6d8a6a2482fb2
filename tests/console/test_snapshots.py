"""SVG snapshots of the console's screens at 80x24 and 160x48 (pytest-textual-snapshot's
format, compared by syrupy): a layout or style change shows as a diff to review, and
``pytest --snapshot-update`` accepts it. SQLite only, on a pinned clock: the pictures are
of the console, and must not vary with a database's id sequences."""

from __future__ import annotations

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion

from core import clock
from core.db import Store
from core.settings import Settings
from tests.console.world import console_app, living_store, settle

SIZES = [(80, 24), (160, 48)]
SCREENS = {
    "dashboard": [],
    "help": ["question_mark"],
    "campaigns": ["c"],
    "launch": ["l"],
    "scheduler": ["s"],
    "customers": ["u"],
    "segments": ["g"],
    "outbox": ["o"],
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
async def test_screen_snapshot(
    store: Store,
    settings: Settings,
    frozen_clock: clock.FixedClock,
    snapshot: SnapshotAssertion,
    screen: str,
    size: tuple[int, int],
) -> None:
    program = await living_store(store, settings)
    app = console_app(store, settings, program)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        for key in SCREENS[screen]:
            await pilot.press(key)
            await settle(app, pilot)
        assert app.export_screenshot() == snapshot(extension_class=SVGImageExtension)
