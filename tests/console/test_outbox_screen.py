"""The outbox screen on SQLite and PostgreSQL: the latest messages with their status, the
state filter, and a message opened to read it as the channel received it; in 80x24."""

from __future__ import annotations

import pytest
from rich.syntax import Syntax
from textual.widgets import DataTable, Static

from console.screens.outbox import MessageScreen, OutboxScreen
from core.db import Store
from core.settings import Settings
from tests.conftest import NOW
from tests.console.world import column, console_app, default_program, settle, show
from tests.outbox_world import deliver_to_file

pytestmark = pytest.mark.usefixtures("frozen_clock")


async def test_the_outbox_lists_filters_and_opens_messages(
    store: Store, settings: Settings
) -> None:
    world = await deliver_to_file(store, settings, NOW)
    app = console_app(store, settings, default_program())
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot, "o")
        screen = app.screen
        assert isinstance(screen, OutboxScreen)
        table = screen.query_one("#outbox", DataTable)
        everything = sorted(world.sent + world.queued, reverse=True)
        assert column(table, 0) == [str(outbox_id) for outbox_id in everything]
        assert set(column(table, 1)) == {"cross-sell-test"}
        assert column(table, 4) == ["queued", "queued", "sent", "sent", "sent"]
        assert "every state" in str(screen.query_one("#outbox-title", Static).render())

        await pilot.press("f")  # queued
        await settle(app, pilot)
        assert column(table, 0) == [str(outbox_id) for outbox_id in sorted(world.queued)[::-1]]
        await pilot.press("f", "f", "f")  # sending, retry, sent
        await settle(app, pilot)
        assert column(table, 4) == ["sent"] * 3
        assert "sent, latest due first" in str(screen.query_one("#outbox-title", Static).render())

        first = world.sent[0]
        table.focus()
        table.move_cursor(row=table.get_row_index(str(first)))
        await pilot.press("enter")
        await settle(app, pilot)
        message = app.screen
        assert isinstance(message, MessageScreen) and message.outbox_id == first
        written = world.written[first]
        head = str(message.query_one("#message-head", Static).render())
        assert written["message_id"] in head and written["subject"] in head
        assert written["address"] in head and "sent" in head
        assert str(message.query_one("#message-text", Static).render()) == written["text"]
        html = message.query_one("#message-html", Static).content
        assert isinstance(html, Syntax) and html.code == written["html"]

        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen is screen


async def test_an_empty_outbox_and_a_queued_message(store: Store, settings: Settings) -> None:
    app = console_app(store, settings, default_program())
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot, "o")
        screen = app.screen
        assert isinstance(screen, OutboxScreen)
        assert screen.query_one("#outbox", DataTable).row_count == 0
        assert "(0 shown)" in str(screen.query_one("#outbox-title", Static).render())
    world = await deliver_to_file(store, settings, NOW)
    app = console_app(store, settings, default_program())
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot, "o")
        await pilot.press("enter")  # the newest: a queued message of the later run
        await settle(app, pilot)
        message = app.screen
        assert isinstance(message, MessageScreen) and message.outbox_id == max(world.queued)
        head = str(message.query_one("#message-head", Static).render())
        assert "not sent yet" in head and "due" in head
