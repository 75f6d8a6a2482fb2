"""The campaigns screen on SQLite and PostgreSQL: every campaign with its last run and
the uplift as core measures it, a campaign's runs with whom each left out, and pause,
resume and run now, each confirmed, written to the audit log, hidden when read-only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from console.app import CadenceConsole
from console.screens import campaigns as campaigns_screen
from console.screens.campaigns import CampaignDetailScreen, CampaignsScreen
from console.screens.confirm import ConfirmScreen
from core import clock
from core.campaigns import campaign_detail, list_campaigns, store_campaign
from core.db import Store
from core.figures import write_uplifts
from core.measure.campaign_report import campaign_uplifts
from core.models import AuditEntry
from core.planner.launch import run_campaign_now
from core.program import Program
from core.program.model import CampaignSpec
from core.settings import Settings
from core.sink import SmtpSink
from tests.console.delivery import deliver_email, with_templates
from tests.console.world import console_app, living_store, settle, show
from tests.smtp_sink import smtp_sink

__all__ = ["smtp_sink"]

FIRST_PURCHASE = "registered-first-purchase"
"""A cycle campaign of the default program with a 30-day goal and a 10% control group;
in the living store some of its audience gave no consent."""
UNCONTROLLED = "no-control-offer"
"""A campaign with a goal but no control group, stored by :func:`_world`."""


async def _world(
    store: Store, settings: Settings, fixed: clock.FixedClock, sink: SmtpSink | None = None
) -> Program:
    """The living store with :data:`FIRST_PURCHASE` run once 31 days ago (its goal window has
    closed; its messages delivered to ``sink`` when there is one) and a campaign that keeps
    no control group."""
    program = await living_store(store, settings)
    spec = CampaignSpec.model_validate(
        {
            "name": UNCONTROLLED,
            "kind": "ad_hoc",
            "target": {"stage": "active"},
            "channel": "email",
            "variants": ["offer_a"],
            "control": 0,
            "goal": {"event": "purchase", "within": "7d"},
        }
    )
    async with store.transaction() as session:
        store_campaign(session, spec, origin="launch", now=clock.now())
    await run_campaign_now(store, program, settings, FIRST_PURCHASE, clock.now())
    if sink is not None:
        assert (await deliver_email(store, with_templates(settings), sink)).sent > 0
    fixed.advance(timedelta(days=31))
    return program


@asynccontextmanager
async def _campaigns(
    store: Store,
    settings: Settings,
    fixed: clock.FixedClock,
    *,
    read_only: bool = False,
    sink: SmtpSink | None = None,
) -> AsyncIterator[tuple[CadenceConsole, Pilot[None], CampaignsScreen]]:
    """The console on :func:`_world` in 80x24, showing the campaigns."""
    program = await _world(store, settings, fixed, sink)
    app = console_app(store, settings, program, read_only=read_only)
    async with app.run_test(size=(80, 24)) as pilot:
        await show(app, pilot, "c")
        screen = app.screen
        assert isinstance(screen, CampaignsScreen)
        yield app, pilot, screen


async def _act(app: CadenceConsole, pilot: Pilot[None], key: str, answer: str = "y") -> None:
    """Press ``key``, then answer its confirmation, and wait for what follows."""
    await pilot.press(key)
    await pilot.pause()
    assert isinstance(app.screen, ConfirmScreen)
    await pilot.press(answer)
    await settle(app, pilot)


def _cell(table: DataTable[object], row: str, column: str) -> str:
    return str(table.get_cell(row, column))


async def _select(pilot: Pilot[None], screen: CampaignsScreen, name: str) -> None:
    table = screen.query_one("#campaigns", DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(name))
    await pilot.pause()
    assert screen.selected() == name


def _shown_keys(app: CadenceConsole) -> dict[str, str]:
    """The screen's bindings the footer offers, by key: description."""
    return {
        key: active.binding.description
        for key, active in app.screen.active_bindings.items()
        if active.binding.show and active.enabled
    }


async def test_every_campaign_is_listed_with_its_last_run_and_uplift_as_core_measures_it(
    store: Store, settings: Settings, frozen_clock: clock.FixedClock
) -> None:
    async with _campaigns(store, settings, frozen_clock) as (app, _, screen):
        now = clock.now()
        async with store.reading() as session:
            summaries = await list_campaigns(session, now, settings.time_zone)
            measured = await campaign_uplifts(
                session, now, settings.measure.min_sample_per_arm, app.context.program.params
            )
        uplifts = {uplift.name: uplift for uplift in measured}
        table = screen.query_one("#campaigns", DataTable)
        assert [key.value for key in table.rows] == [s.name for s in summaries]
        for s in summaries:
            assert _cell(table, s.name, "status") == s.status
            assert _cell(table, s.name, "target") == s.target
            verdict = str(uplifts[s.name].estimate.verdict)
            assert verdict in _cell(table, s.name, "uplift"), s.name
        assert _cell(table, UNCONTROLLED, "uplift") == "no control group, uplift unknown"
        assert _cell(table, "purchase-receipt", "uplift") == "no goal, uplift unknown"
        assert _cell(table, "new-second-purchase", "uplift") == "no runs yet"
        # Nothing was delivered, so no message counts as treated.
        assert _cell(table, FIRST_PURCHASE, "uplift") == "not enough data"
        first = next(s for s in summaries if s.name == FIRST_PURCHASE)
        assert first.last_run is not None
        counts = first.last_run.counts
        assert _cell(table, FIRST_PURCHASE, "counts") == f"{counts.queued:,}/{counts.targeted:,}"
        assert _cell(table, FIRST_PURCHASE, "last run") != "-"
        assert _cell(table, FIRST_PURCHASE, "next run") != "-"  # an active cycle
        line = str(screen.query_one("#campaign-line", Static).render())
        assert line.startswith(f"{summaries[0].name}: "), "the highlighted one, in full"


async def test_with_enough_members_the_uplift_has_its_interval(
    store: Store, settings: Settings, frozen_clock: clock.FixedClock, smtp_sink: SmtpSink
) -> None:
    settings.measure.min_sample_per_arm = 1
    async with _campaigns(store, settings, frozen_clock, sink=smtp_sink) as (_, _, screen):
        uplift = _cell(screen.query_one("#campaigns", DataTable), FIRST_PURCHASE, "uplift")
        assert "pp [" in uplift and "]" in uplift, uplift


async def test_the_uplifts_the_scheduler_stored_are_shown_with_when_it_measured_them(
    store: Store,
    settings: Settings,
    frozen_clock: clock.FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    program = await _world(store, settings, frozen_clock)
    measured_at = clock.now()
    await write_uplifts(store, program, settings, measured_at)
    frozen_clock.advance(timedelta(minutes=10))
    later = CampaignSpec.model_validate(
        {"name": "stored-since", "kind": "ad_hoc", "target": {"stage": "active"}}
        | {"channel": "email", "variants": ["offer_a"]}
    )
    async with store.transaction() as session:
        store_campaign(session, later, origin="launch", now=clock.now())

    async def not_measured_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("the console measured uplifts the scheduler had stored")

    monkeypatch.setattr(campaigns_screen, "campaign_uplifts", not_measured_here)
    app = console_app(store, settings, program)
    async with app.run_test(size=(160, 48)) as pilot:
        await show(app, pilot, "c")
        screen = app.screen
        assert isinstance(screen, CampaignsScreen)
        table = screen.query_one("#campaigns", DataTable)
        assert _cell(table, UNCONTROLLED, "uplift") == "no control group, uplift unknown"
        assert _cell(table, FIRST_PURCHASE, "uplift") == "not enough data"
        assert _cell(table, "stored-since", "uplift") == "not measured yet"
        title = str(screen.query_one("#campaigns-title", Static).render())
        when = measured_at.astimezone(settings.zone)
        assert f"uplift measured {when:%m-%d %H:%M}" in title, title
        await _select(pilot, screen, FIRST_PURCHASE)
        await pilot.press("enter")
        await settle(app, pilot)
        about = str(app.screen.query_one("#campaign-about", Static).render())
        assert f"not enough data (measured {when:%Y-%m-%d %H:%M})" in about, about


async def test_a_campaign_opens_on_its_runs_with_whom_each_left_out(
    store: Store, settings: Settings, frozen_clock: clock.FixedClock
) -> None:
    async with _campaigns(store, settings, frozen_clock) as (app, pilot, screen):
        await _select(pilot, screen, FIRST_PURCHASE)
        await pilot.press("enter")
        await settle(app, pilot)
        detail = app.screen
        assert isinstance(detail, CampaignDetailScreen)
        about = str(detail.query_one("#campaign-about", Static).render())
        assert "cycle" in about and "not enough data" in about
        runs = detail.query_one("#campaign-runs", DataTable)
        [run_key] = [key.value for key in runs.rows]
        assert run_key is not None and run_key.startswith("manual:")
        exclusions = detail.query_one("#campaign-exclusions", DataTable)
        shown = [
            (str(exclusions.get_row_at(i)[0]), str(exclusions.get_row_at(i)[1]))
            for i in range(exclusions.row_count)
        ]
        async with store.reading() as session:
            found = await campaign_detail(session, FIRST_PURCHASE, clock.now(), settings.time_zone)
        [run] = found.runs
        assert run.counts.excluded > 0, "the demo has customers the policy leaves out"
        assert shown == [(reason, f"{count:,}") for reason, count in run.exclusions]
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen is screen


async def test_pause_resume_and_run_now_are_confirmed_and_audited(
    store: Store, settings: Settings, frozen_clock: clock.FixedClock
) -> None:
    async with _campaigns(store, settings, frozen_clock) as (app, pilot, screen):
        assert {"p", "e", "n"} <= set(_shown_keys(app))
        table = screen.query_one("#campaigns", DataTable)
        await _select(pilot, screen, FIRST_PURCHASE)

        await _act(app, pilot, "p", answer="n")  # no: nothing changes
        assert _cell(table, FIRST_PURCHASE, "status") == "active"

        await _act(app, pilot, "p")
        assert _cell(table, FIRST_PURCHASE, "status") == "paused"
        assert _cell(table, FIRST_PURCHASE, "next run") == "-"
        assert screen.selected() == FIRST_PURCHASE, "the cursor stays on the campaign"

        await _act(app, pilot, "n")  # a paused campaign is not run, and core says why
        assert any("is paused" in str(n.message) for n in app._notifications)

        await _act(app, pilot, "e")
        assert _cell(table, FIRST_PURCHASE, "status") == "active"

        before = _cell(table, FIRST_PURCHASE, "last run")
        frozen_clock.advance(timedelta(hours=1))
        await _act(app, pilot, "n")
        assert _cell(table, FIRST_PURCHASE, "last run") != before
    async with store.reading() as session:
        actions = list(
            (
                await session.execute(
                    select(AuditEntry.action)
                    .where(AuditEntry.target == FIRST_PURCHASE)
                    .order_by(AuditEntry.id)
                )
            ).scalars()
        )
    # The first run comes from _world; the console's pause, resume and run follow.
    assert actions == ["campaign.run", "campaign.pause", "campaign.resume", "campaign.run"]


async def test_read_only_shows_no_action(
    store: Store, settings: Settings, frozen_clock: clock.FixedClock
) -> None:
    async with _campaigns(store, settings, frozen_clock, read_only=True) as (app, pilot, screen):
        shown = _shown_keys(app)
        assert not {"p", "e", "n"} & set(shown), shown
        assert shown.get("enter") == "Runs"
        await _select(pilot, screen, FIRST_PURCHASE)
        for key in ("p", "e", "n"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is screen, f"{key} offers nothing when read-only"
        assert _cell(screen.query_one("#campaigns", DataTable), FIRST_PURCHASE, "status") == (
            "active"
        )


async def test_the_campaigns_fit_80x24_and_use_a_wider_terminal(
    store: Store, settings: Settings, frozen_clock: clock.FixedClock
) -> None:
    async with _campaigns(store, settings, frozen_clock) as (app, pilot, screen):
        table = screen.query_one("#campaigns", DataTable)
        assert table.region.width <= 80 and table.region.height >= 10
        narrow = table.region.width
        await pilot.resize_terminal(160, 48)
        await settle(app, pilot)
        assert table.region.width > narrow and table.region.height > 20
