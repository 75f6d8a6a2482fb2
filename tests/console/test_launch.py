"""The launch wizard on SQLite and PostgreSQL: the live audience preview and the sample
message, every kind of bad input shown next to its field and blocking the launch, the
typed confirmation, and the whole flow end to end: launched in the console, rows in the
outbox, sent by the real delivery workers, received by a real SMTP sink, while the
progress bar follows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, ProgressBar, Select, Static

from console.app import CadenceConsole
from console.screens.confirm import TypedConfirmScreen
from console.screens.dashboard import DashboardScreen
from console.screens.launch import PREVIEW_DELAY, LaunchScreen
from core import clock
from core.db import Store
from core.models import AuditEntry, Campaign, OutboxMessage
from core.planner.launch import launch_spec, preview_spec
from core.policy import Outcome
from core.program import Program
from core.rules import RuleError, parse_rule
from core.settings import Settings
from core.sink import SmtpSink
from tests.console.delivery import deliver_email, with_templates
from tests.console.world import console_app, living_store, settle, show
from tests.smtp_sink import smtp_sink

# On the pinned clock every test shares one living store per database (it is kept by the
# moment it was built for) instead of building its own as of the wall clock's now.
pytestmark = pytest.mark.usefixtures("frozen_clock")

__all__ = ["smtp_sink"]

STAGE = "registered"
"""A stage of the default program with customers in the living store who take e-mail."""
NAME = "console-welcome"
NOT_APPLIED = "not-applied-yet"
"""A segment in the program files that ``cadence program apply`` has not stored yet."""


@asynccontextmanager
async def _launch_screen(
    store: Store, settings: Settings, program: Program | None = None
) -> AsyncIterator[tuple[CadenceConsole, Pilot[None], LaunchScreen]]:
    """The console on the living store in 80x24, showing the launch wizard."""
    settings = with_templates(settings)
    settings.policy.quiet_hours = None  # every message may go now, whatever the zone
    living = await living_store(store, settings)
    app = console_app(store, settings, program or living)
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot, "l")
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        yield app, pilot, screen


async def _previewed(app: CadenceConsole, pilot: Pilot[None]) -> None:
    """Wait out the debounce and the preview it starts."""
    await pilot.pause(PREVIEW_DELAY + 0.2)
    await settle(app, pilot)


async def _type(pilot: Pilot[None], screen: LaunchScreen, field: str, text: str) -> None:
    """Type ``text`` into the input ``field`` as an operator would, replacing its value."""
    entry = screen.query_one(f"#{field}", Input)
    entry.focus()
    entry.value = ""
    await pilot.press(*text)


def _choose(screen: LaunchScreen, field: str, value: str) -> None:
    select: Select[str] = screen.query_one(f"#{field}", Select)
    select.value = value


def _problem(screen: LaunchScreen, field: str) -> str:
    line = screen.query_one(f"#{field}-problem", Static)
    return str(line.render()) if line.display else ""


def _fill(screen: LaunchScreen) -> None:
    _choose(screen, "stage", STAGE)
    _choose(screen, "template", "welcome")


async def _campaigns(store: Store) -> int:
    async with store.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(Campaign)) or 0)


async def test_the_whole_launch_flow_end_to_end(
    store: Store, settings: Settings, smtp_sink: SmtpSink
) -> None:
    async with _launch_screen(store, settings) as (app, pilot, screen):
        before = await _campaigns(store)
        _fill(screen)
        await _type(pilot, screen, "rule", "consent_email == true")
        await _type(pilot, screen, "name", NAME)
        await _previewed(app, pilot)
        assert {field: _problem(screen, field) for field in screen.FIELDS} == dict.fromkeys(
            screen.FIELDS, ""
        )

        # The preview is the planner's, as `cadence campaign preview` counts it.
        spec = launch_spec(
            segment=None,
            stage=STAGE,
            rule="consent_email == true",
            template="welcome",
            channel="email",
            control=10,
            priority=50,
            name=NAME,
            now=clock.now(),
        )
        plan = await preview_spec(
            store, app.context.program, app.context.settings, spec, clock.now()
        )
        sends = plan.count(Outcome.QUEUED) + plan.count(Outcome.HELD)
        assert sends > 0
        summary = str(screen.query_one("#audience-summary", Static).render())
        assert summary.startswith(f"{plan.targeted:,} targeted: {sends:,} messages")
        audience = screen.query_one("#audience", DataTable)
        shown = {
            str(audience.get_row_at(i)[0]): str(audience.get_row_at(i)[1])
            for i in range(audience.row_count)
        }
        assert shown["queued"] == f"{plan.count(Outcome.QUEUED):,}"
        message = str(screen.query_one("#message-preview", Static).render())
        assert "Subject: " in message and "Maria" in message, message

        # A wrong name launches nothing; the right one launches.
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert isinstance(app.screen, TypedConfirmScreen)
        await pilot.press(*"console-welcom", "enter")
        await pilot.pause()
        assert isinstance(app.screen, TypedConfirmScreen)
        assert await _campaigns(store) == before
        app.screen.query_one("#typed", Input).value = ""
        await pilot.press(*NAME, "enter")
        await settle(app, pilot)
        shown_now: object = app.screen
        assert shown_now is screen
        assert await _campaigns(store) == before + 1
        assert screen.run_id is not None

        async with store.reading() as session:
            queued = await session.scalar(
                select(func.count()).where(
                    OutboxMessage.run_id == screen.run_id, OutboxMessage.state == "queued"
                )
            )
            audited = await session.scalar(
                select(AuditEntry.summary).where(AuditEntry.action == "campaign.launch")
            )
        assert queued == sends
        assert audited is not None and NAME in audited
        bar = screen.query_one("#launch-progress", ProgressBar)
        assert (bar.total, bar.progress) == (sends, 0)

        stats = await deliver_email(store, app.context.settings, smtp_sink)
        assert stats.sent == sends
        for _ in range(40):  # the bar reads the outbox every POLL_SECONDS
            await pilot.pause(0.25)
            if bar.progress == sends:
                break
        assert bar.progress == bar.total == sends
        status = str(screen.query_one("#launch-status", Static).render())
        assert status.startswith(f"delivered: {sends:,} of {sends:,}"), status
    assert len(smtp_sink.messages) == sends
    assert len({message.recipients for message in smtp_sink.messages}) == sends


async def test_bad_input_is_shown_next_to_its_field_and_blocks_the_launch(
    store: Store, settings: Settings
) -> None:
    async with _launch_screen(store, settings) as (app, pilot, screen):
        before = await _campaigns(store)
        assert _problem(screen, "target") == "choose a stage, a segment or both"
        assert _problem(screen, "template") == "choose a template"
        _fill(screen)
        bad_rule = "purchase_count >> 2"
        await _type(pilot, screen, "rule", bad_rule)
        await _type(pilot, screen, "control", "ten")
        await _type(pilot, screen, "priority", "2000")
        await _type(pilot, screen, "at", "next tuesday")
        await _type(pilot, screen, "name", "Not A Name")
        await _previewed(app, pilot)
        try:
            parse_rule(bad_rule, params=app.context.program.params)
        except RuleError as error:
            assert _problem(screen, "rule") == str(error)
        assert _problem(screen, "control") == "'ten' is not a number"
        assert "cannot read 'next tuesday'" in _problem(screen, "at")
        assert _problem(screen, "target") == ""

        # The numbers and the name as core checks them, once they are numbers at all.
        await _type(pilot, screen, "rule", "")
        await _type(pilot, screen, "control", "150")
        await _type(pilot, screen, "at", (clock.now() - timedelta(hours=1)).isoformat())
        await _previewed(app, pilot)
        assert "less than or equal to 100" in _problem(screen, "control")
        assert "less than or equal to 1000" in _problem(screen, "priority")
        assert "pattern" in _problem(screen, "name")
        assert "has passed" in _problem(screen, "at")

        await pilot.press("ctrl+l")
        await pilot.pause()
        assert app.screen is screen, "no confirmation for a form with problems"
        assert "nothing to launch yet" in _problem(screen, "launch")

        # An empty audience.
        await _type(pilot, screen, "control", "10")
        await _type(pilot, screen, "priority", "50")
        await _type(pilot, screen, "at", "now")
        await _type(pilot, screen, "name", "")
        await _type(pilot, screen, "rule", "revenue_total > 100000000")
        await _previewed(app, pilot)
        assert _problem(screen, "target").startswith("the audience is empty")
        assert _problem(screen, "rule") == _problem(screen, "control") == ""
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert app.screen is screen
        assert await _campaigns(store) == before


async def test_a_segment_not_applied_yet_is_refused_next_to_the_segment(
    store: Store, settings: Settings
) -> None:
    program = await _program_with_an_unapplied_segment()
    async with _launch_screen(store, settings, program) as (app, pilot, screen):
        _choose(screen, "segment", NOT_APPLIED)
        _choose(screen, "template", "welcome")
        await _previewed(app, pilot)
        assert f"segment `{NOT_APPLIED}` is not in the database" in _problem(screen, "target")
        assert "no audience" in str(screen.query_one("#audience-summary", Static).render())
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert app.screen is screen


async def _program_with_an_unapplied_segment() -> Program:
    from tests.console.world import default_program

    program = default_program()
    first = program.segments[0]
    extra = replace(first, spec=first.spec.model_copy(update={"name": NOT_APPLIED}))
    return replace(program, segments=[*program.segments, extra])


async def test_a_launch_for_later_waits_for_its_time(store: Store, settings: Settings) -> None:
    async with _launch_screen(store, settings) as (app, pilot, screen):
        _fill(screen)
        at = clock.now() + timedelta(days=2)
        await _type(pilot, screen, "at", at.isoformat(timespec="minutes"))
        await _type(pilot, screen, "name", NAME)
        await _previewed(app, pilot)
        await pilot.press("ctrl+l")
        await pilot.pause()
        await pilot.press(*NAME, "enter")
        await settle(app, pilot)
        status = str(screen.query_one("#launch-status", Static).render())
        assert status.startswith("run pending"), status
        assert screen.query_one("#launch-progress", ProgressBar).total is None
        async with store.reading() as session:
            rows = await session.scalar(select(func.count()).select_from(OutboxMessage))
        assert rows == 0

        await pilot.press("ctrl+n")  # a new launch starts from the form as it was
        await _previewed(app, pilot)
        assert screen.run_id is None
        assert screen.query_one("#name", Input).value == ""
        assert not screen.query_one("#launch-form").disabled


async def test_read_only_offers_no_launch(store: Store, settings: Settings) -> None:
    program = await living_store(store, settings)
    app = console_app(store, settings, program, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot, "l")
        assert isinstance(app.screen, DashboardScreen)
        assert "launch" not in {entry.mode for entry in app.entries}
        assert "l" not in app.screen.active_bindings


async def test_the_wizard_fits_80x24_and_sits_beside_its_previews_when_wide(
    store: Store, settings: Settings
) -> None:
    async with _launch_screen(store, settings) as (app, pilot, screen):
        form = screen.query_one("#launch-form")
        audience = screen.query_one("#audience-panel")
        assert form.region.right <= 80
        assert audience.region.y > form.region.y, "one column: the audience below"
        await pilot.resize_terminal(160, 48)
        await settle(app, pilot)
        await asyncio.sleep(0)
        assert audience.region.x > form.region.x, "two columns: the audience beside"
