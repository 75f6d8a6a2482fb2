"""Campaigns: every stored campaign with its last run and uplift; pause, resume, run now.

The uplifts are the ones the scheduler measured last (:mod:`core.figures`), with when it
measured them: measuring every campaign's goal reads the goal events, seconds at a million
customers. Until the scheduler has stored any, the console measures them itself, the
list first and the uplift after it: the table is on screen while they are measured.
Enter opens a campaign's runs, each with whom it left out and why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Header, Static

from console.screens.base import StoreScreen
from console.screens.confirm import ConfirmScreen
from console.widgets.figures import count_text, moment_text
from console.widgets.footer import KeysFooter
from console.widgets.tables import Row, refill
from core import clock
from core.campaigns import (
    CampaignDetail,
    CampaignSummary,
    RunRecord,
    campaign_detail,
    list_campaigns,
    pause_campaign,
    resume_campaign,
)
from core.errors import CampaignError
from core.figures import UpliftFigure, stored_uplifts
from core.measure.campaign_report import campaign_uplifts
from core.measure.uplift import Verdict
from core.planner.launch import run_campaign_now
from core.policy import Outcome

UPLIFT_SECONDS = 60.0
"""How long uplifts measured here are shown before they are measured again (they are
judged over goal windows of days; reload, ``r``, measures them at once)."""
UPLIFT_WAIT = 0.2
"""Seconds the list waits for its uplift before it is shown without it: on a small store
the table is filled once, with both."""
_VERDICT_STYLES = {str(Verdict.UPLIFT): "green", str(Verdict.NEGATIVE): "red"}
_ACTIONS = frozenset({"pause", "resume", "run_now"})
"""The actions that change anything: hidden when the console is read-only."""


def uplift_text(uplift: UpliftFigure | None, zone: ZoneInfo, missing: str) -> Text:
    """A campaign's uplift in points with its interval and verdict, or, when core gives no
    figure, its verdict alone (``not enough data``, ``no control group, uplift unknown``);
    ``missing`` when there is none to show."""
    if uplift is None:
        return Text(missing, style="dim")
    verdict = uplift.verdict
    if uplift.uplift is None or uplift.low is None or uplift.high is None:
        if verdict == Verdict.OPEN and uplift.next_close is not None:
            verdict += f" until {moment_text(uplift.next_close, zone)[:16]}"
        return Text(verdict, style="dim")
    return Text(
        f"{uplift.uplift * 100:+.1f}pp [{uplift.low * 100:+.1f}, "
        f"{uplift.high * 100:+.1f}] {verdict}",
        style=_VERDICT_STYLES.get(verdict, ""),
    )


def _short_moment(moment: str) -> str:
    """``2026-11-23 14:00:00`` as ``11-23 14:00``: the list's columns are narrow."""
    return moment if moment == "-" else moment[5:16]


class CampaignsScreen(StoreScreen):
    """Every campaign: kind, target, priority, status, next run, last run, uplift."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # A priority binding, so the footer offers it over the table's own (hidden) enter.
        Binding("enter", "open", "Runs", priority=True),
        Binding("p", "pause", "Pause"),
        Binding("e", "resume", "Resume"),
        Binding("n", "run_now", "Run now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._uplifts: dict[str, UpliftFigure] = {}
        self._uplifts_at: float | None = None
        """When the uplifts shown were measured here (``time.monotonic``)."""
        self._stored = False
        """The uplifts shown are the scheduler's, not measured here."""
        self._summaries: dict[str, CampaignSummary] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="panel", id="campaigns-panel"):
            yield Static("Campaigns", classes="panel-title", id="campaigns-title")
            yield DataTable(id="campaigns", cursor_type="row", zebra_stripes=True)
            yield Static("", id="campaign-line")
        yield KeysFooter()

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#campaigns", DataTable)
        # What an operator scans for comes first: on 80 columns the rest scrolls into view
        # and the line under the table repeats it for the highlighted campaign.
        for label in ("campaign", "status", "uplift", "next run", "last run"):
            table.add_column(label, key=label)
        table.add_column("queued/targeted", key="counts")
        for label in ("kind", "pri", "target"):
            table.add_column(label, key=label)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in _ACTIONS and self.context.read_only)

    async def load(self) -> None:
        context = self.context
        async with context.store.reading() as session:
            summaries = await list_campaigns(session, clock.now(), context.settings.time_zone)
            stored = await stored_uplifts(session)
        self._stored = bool(stored)
        if stored:
            self._uplifts = stored
            self.show(summaries)
            return
        if self._uplifts_at is not None and time.monotonic() - self._uplifts_at < UPLIFT_SECONDS:
            self.show(summaries)
            return
        measuring = asyncio.ensure_future(self._measure())
        try:
            if not (await asyncio.wait({measuring}, timeout=UPLIFT_WAIT))[0]:
                self.show(summaries)  # the list now, the uplift once measured
            uplifts = await measuring
        finally:
            measuring.cancel()  # this load was cancelled meanwhile (nothing, once measured)
        self._uplifts = uplifts
        self._uplifts_at = time.monotonic()
        self.show(summaries)

    async def _measure(self) -> dict[str, UpliftFigure]:
        context = self.context
        now = clock.now()
        async with context.store.reading() as session:
            uplifts = await campaign_uplifts(
                session, now, context.settings.measure.min_sample_per_arm, context.program.params
            )
        return {uplift.name: UpliftFigure.of(uplift, now) for uplift in uplifts}

    def forget(self) -> None:
        self._uplifts_at = None  # the next load measures them again

    def show(self, summaries: list[CampaignSummary]) -> None:
        """The campaigns in the table with the uplifts measured last, the cursor kept on
        the campaign it was on."""
        zone = self.context.settings.zone
        rows: list[Row] = []
        for s in summaries:
            last = s.last_run
            cells = [
                s.name,
                Text(s.status, style="yellow" if s.status == "paused" else ""),
                uplift_text(
                    self._uplifts.get(s.name),
                    zone,
                    "not measured yet" if self._stored else "measuring...",
                ),
                _short_moment(moment_text(s.next_run_at, zone)),
                _short_moment(moment_text(last.planned_at if last else None, zone)),
                Text(f"{last.counts.queued:,}/{last.counts.targeted:,}" if last else "-"),
                s.kind.replace("_", "-"),
                count_text(s.priority),
                s.target,
            ]
            rows.append((s.name, cells))
        refill(self.query_one("#campaigns", DataTable), rows)
        self._summaries = {s.name: s for s in summaries}
        title = f"Campaigns: {len(summaries)} (times in {self.context.settings.time_zone}"
        if self._stored and self._uplifts:
            measured = min(figure.computed_at for figure in self._uplifts.values())
            title += f"; uplift measured {_short_moment(moment_text(measured, zone))}"
        title += ")"
        self.query_one("#campaigns-title", Static).update(title)
        self._describe(self.selected())

    @on(DataTable.RowHighlighted, "#campaigns")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._describe(event.row_key.value)

    def _describe(self, name: str | None) -> None:
        """The highlighted campaign in one line: kind, priority, channel and target."""
        s = self._summaries.get(name or "")
        line = (
            f"{s.name}: {s.kind.replace('_', '-')}, priority {s.priority}, {s.channel}, {s.target}"
            if s is not None
            else ""
        )
        self.query_one("#campaign-line", Static).update(line)

    def selected(self) -> str | None:
        """The name of the campaign under the cursor."""
        table = self.query_one("#campaigns", DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    # --- the detail view ----------------------------------------------------------------

    def action_open(self) -> None:
        name = self.selected()
        if name is not None:
            self.app.push_screen(CampaignDetailScreen(name))

    @on(DataTable.RowSelected, "#campaigns")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    # --- actions, each confirmed, each through core (which writes the audit log) ---------

    def action_pause(self) -> None:
        self._confirm("Pause `{name}`? It starts no runs until resumed.", self._pause)

    def action_resume(self) -> None:
        self._confirm("Resume `{name}`? It runs again from its next slot.", self._resume)

    def action_run_now(self) -> None:
        self._confirm(
            "Run `{name}` now, outside its schedule, through the contact policy?", self._run_now
        )

    def _confirm(self, question: str, act: Callable[[str], Awaitable[str]]) -> None:
        name = self.selected()
        if name is None or self.context.read_only:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_guarded(lambda: self._act(act, name), group="action")

        self.app.push_screen(ConfirmScreen(question.format(name=name)), answered)

    async def _act(self, act: Callable[[str], Awaitable[str]], name: str) -> None:
        """Do ``act`` on campaign ``name``, say what came of it, and read again."""
        try:
            message = await act(name)
        except CampaignError as error:
            self.notify(str(error), title=name, severity="error", timeout=8)
        else:
            self.notify(message, title=name)
        self.reload()

    async def _pause(self, name: str) -> str:
        async with self.context.store.transaction() as session:
            return (await pause_campaign(session, name)).message

    async def _resume(self, name: str) -> str:
        async with self.context.store.transaction() as session:
            return (await resume_campaign(session, name)).message

    async def _run_now(self, name: str) -> str:
        context = self.context
        planned = await run_campaign_now(
            context.store, context.program, context.settings, name, clock.now()
        )
        plan = planned.plan
        sends = plan.count(Outcome.QUEUED) + plan.count(Outcome.HELD)
        return (
            f"Planned {planned.run_key}: {plan.targeted:,} targeted, {sends:,} messages, "
            f"{plan.count(Outcome.CONTROL):,} control, {plan.excluded:,} excluded."
        )


class CampaignDetailScreen(StoreScreen):
    """One campaign: what it is, its uplift, its latest runs and whom each left out."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.campaign = name
        self._runs: dict[str, RunRecord] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="campaign-detail"):
            with Vertical(classes="panel", id="campaign-about-panel"):
                yield Static(self.campaign, classes="panel-title")
                yield Static("reading the store...", id="campaign-about")
            with Vertical(classes="panel", id="campaign-runs-panel"):
                yield Static("Runs, latest first", classes="panel-title")
                yield DataTable(id="campaign-runs", cursor_type="row", zebra_stripes=True)
            with Vertical(classes="panel", id="campaign-exclusions-panel"):
                yield Static("Left out of the run, by reason", classes="panel-title")
                yield DataTable(id="campaign-exclusions", cursor_type="none")
        yield KeysFooter()

    def on_mount(self) -> None:
        super().on_mount()
        runs = self.query_one("#campaign-runs", DataTable)
        runs.add_columns("due", "occasion", "status", "targeted", "queued", "held", "control")
        runs.add_column("excluded")
        self.query_one("#campaign-exclusions", DataTable).add_columns("reason", "customers")

    def action_back(self) -> None:
        self.dismiss()

    async def load(self) -> None:
        context = self.context
        now = clock.now()
        async with context.store.reading() as session:
            detail = await campaign_detail(session, self.campaign, now, context.settings.time_zone)
            stored = await stored_uplifts(session, self.campaign)
            if self.campaign in stored:
                uplift, measured = stored[self.campaign], True
            else:
                [measuring] = await campaign_uplifts(
                    session,
                    now,
                    context.settings.measure.min_sample_per_arm,
                    context.program.params,
                    self.campaign,
                )
                uplift, measured = UpliftFigure.of(measuring, now), False
        self.show(detail, uplift, stored=measured)

    def show(self, detail: CampaignDetail, uplift: UpliftFigure, *, stored: bool) -> None:
        zone = self.context.settings.zone
        s = detail.summary
        about = Text()
        about.append(
            f"{s.kind.replace('_', '-')} · {s.status} · priority {s.priority} · {s.channel} "
            f"({s.category}) · from {s.origin}\n"
        )
        about.append(f"target: {s.target}\n")
        if s.schedule:
            about.append(f"schedule: {s.schedule}; next run {moment_text(s.next_run_at, zone)}\n")
        about.append("uplift: ")
        about.append_text(uplift_text(uplift, zone, "-"))
        if stored:
            about.append(f" (measured {moment_text(uplift.computed_at, zone)[:16]})", style="dim")
        self.query_one("#campaign-about", Static).update(about)
        runs = self.query_one("#campaign-runs", DataTable)
        runs.clear()
        self._runs = {run.run_key: run for run in detail.runs}
        for run in detail.runs:
            c = run.counts
            runs.add_row(
                moment_text(run.due_at, zone)[:16],
                run.occasion,
                run.status if run.error is None else f"{run.status}: {run.error}",
                *(count_text(n) for n in (c.targeted, c.queued, c.held, c.control, c.excluded)),
                key=run.run_key,
            )
        if not detail.runs:
            runs.add_row("-", "no runs yet", "", "", "", "", "", "")
        self._show_exclusions(detail.runs[0] if detail.runs else None)

    @on(DataTable.RowHighlighted, "#campaign-runs")
    def _run_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key is not None and key in self._runs:
            self._show_exclusions(self._runs[key])

    def _show_exclusions(self, run: RunRecord | None) -> None:
        table = self.query_one("#campaign-exclusions", DataTable)
        table.clear()
        reasons = run.exclusions if run is not None else []
        for reason, count in reasons:
            table.add_row(reason, count_text(count))
        if not reasons:
            table.add_row("nobody" if run is not None else "no runs yet", "")
