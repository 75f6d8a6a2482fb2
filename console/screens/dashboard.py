"""The dashboard: how each lifecycle stage is covered, how the program runs, at a glance."""

from __future__ import annotations

import time
from typing import ClassVar
from zoneinfo import ZoneInfo

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import DataTable, Header, Sparkline, Static

from console.screens.base import StoreScreen
from console.widgets.figures import count_text, kpi_text, moment_text
from console.widgets.footer import KeysFooter
from console.widgets.tables import refill
from core import clock
from core.durations import describe_span
from core.overview import MessageTallies, Overview, dashboard_overview

MESSAGES_SECONDS = 30.0
"""How long the week's messages are shown before they are read again: the rest of the
dashboard is read every ``console.refresh_seconds``, but until the scheduler has stored
its counts, counting a week of messages takes seconds at a million customers (reload,
``r``, reads them at once)."""


class DashboardScreen(StoreScreen):
    """Stage funnel, automated share, messages by channel, scheduler health and trends."""

    LIVE: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self._messages: MessageTallies | None = None
        self._messages_at = 0.0
        """When the week's messages shown were read (``time.monotonic``)."""
        self._trends: dict[str, list[float]] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Grid(id="dashboard"):
            with Vertical(classes="panel", id="funnel-panel"):
                yield Static("Lifecycle stages", classes="panel-title")
                yield DataTable(id="funnel", cursor_type="row", zebra_stripes=True)
            with Vertical(classes="panel", id="health-panel"):
                yield Static("Scheduler", classes="panel-title")
                yield Static("reading the store...", id="health")
                yield Static("", id="programme")
            with Vertical(classes="panel", id="messages-panel"):
                yield Static(
                    "Messages due today / this week", classes="panel-title", id="messages-title"
                )
                yield DataTable(id="messages", cursor_type="none")
            with Vertical(classes="panel", id="trends-panel"):
                yield Static("Coverage, last 30 days", classes="panel-title")
                yield Vertical(id="trends")
        yield KeysFooter()

    def on_mount(self) -> None:
        super().on_mount()
        funnel = self.query_one("#funnel", DataTable)
        funnel.add_columns("stage", "customers", "coverage", "conversion")
        messages = self.query_one("#messages", DataTable)
        messages.add_columns("channel", "outcome", "today", "week")

    async def load(self) -> None:
        context = self.context
        fresh = (
            self._messages is not None and time.monotonic() - self._messages_at < MESSAGES_SECONDS
        )
        async with context.store.reading() as session:
            overview = await dashboard_overview(
                session,
                context.program,
                context.settings,
                clock.now(),
                messages=self._messages if fresh else None,
            )
        if not fresh:
            self._messages, self._messages_at = overview.messages, time.monotonic()
        self.show(overview)

    def forget(self) -> None:
        self._messages = None

    def show(self, overview: Overview) -> None:
        """Lay ``overview`` out on the panels."""
        refill(
            self.query_one("#funnel", DataTable),
            [
                (
                    stage.name,
                    [
                        stage.name,
                        count_text(stage.customers),
                        kpi_text(stage.kpis.get("coverage")),
                        kpi_text(stage.kpis.get("conversion")),
                    ],
                )
                for stage in overview.stages
            ],
        )
        refill(
            self.query_one("#messages", DataTable),
            [
                (
                    f"{tally.channel} {tally.outcome}",
                    [tally.channel, tally.outcome, count_text(tally.today), count_text(tally.week)],
                )
                for tally in overview.messages.tallies
            ]
            or [("none", ["-", "none this week", "", ""])],
        )
        self.query_one("#messages-title", Static).update(
            _messages_title(overview, self.context.settings.zone)
        )
        self.query_one("#health", Static).update(_health_text(overview))
        self.query_one("#programme", Static).update(_programme_text(overview))
        self._show_trends(overview)

    def _show_trends(self, overview: Overview) -> None:
        series = {
            stage.name: overview.trends.get(stage.name, {}).get("coverage", [])
            for stage in overview.stages
        }
        shown = {name: values for name, values in series.items() if len(values) > 1}
        if shown == self._trends:
            return  # a new snapshot comes once a day; the live reloads in between change nothing
        self._trends = shown
        trends = self.query_one("#trends", Vertical)
        trends.remove_children()
        if not shown:
            trends.mount(Static("No daily KPI snapshots yet: the scheduler writes one a day."))
            return
        for name, values in shown.items():
            trends.mount(Static(f"{name} {values[-1]:.0%}", classes="trend-label"))
            trends.mount(Sparkline(values, classes="trend"))


def _health_text(overview: Overview) -> Text:
    health = overview.health
    text = Text()
    leader = health.leader
    if leader is None:
        text.append("no leader", style="bold red")
        text.append(": start one with `cadence run`\n")
    else:
        age = describe_span(leader.heartbeat_age)
        stale = leader.heartbeat_age.total_seconds() > 30
        text.append("leader ", style="bold")
        text.append(leader.node)
        text.append(f"  heartbeat {age} ago\n", style="red" if stale else "green")
    text.append(f"{len(health.nodes)} node(s), {health.waiting:,} messages waiting\n")
    if health.failures:
        latest = health.failures[0]
        error = (latest.error or "").splitlines()[0] if latest.error else "failed"
        text.append(f"last failure: {latest.job} ", style="red")
        text.append(f"{latest.started_at:%m-%d %H:%M} {error}"[:120])
    else:
        text.append("no failed job runs", style="green")
    return text


def _messages_title(overview: Overview, zone: ZoneInfo) -> str:
    """The panel's title, with when the scheduler counted the messages (when it did)."""
    title = "Messages due today / this week"
    messages = overview.messages
    if not messages.stored:
        return title
    return f"{title}, counted {moment_text(messages.counted_at, zone)[5:16]}"


def _programme_text(overview: Overview) -> Text:
    text = Text("automated share ", style="bold")
    text.append_text(kpi_text(overview.automated_share))
    day = overview.snapshot_day
    text.append(f"\nKPIs as of {day:%Y-%m-%d}" if day else "\nno KPI snapshot yet", style="dim")
    return text
