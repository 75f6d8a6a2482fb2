"""The dashboard: how each lifecycle stage is covered, how the program runs, at a glance."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import DataTable, Footer, Header, Sparkline, Static

from console.screens.base import StoreScreen
from console.widgets.figures import count_text, kpi_text
from core import clock
from core.durations import describe_span
from core.overview import Overview, dashboard_overview


class DashboardScreen(StoreScreen):
    """Stage funnel, automated share, messages by channel, scheduler health and trends."""

    LIVE: ClassVar[bool] = True

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
                yield Static("Messages due today / this week", classes="panel-title")
                yield DataTable(id="messages", cursor_type="none")
            with Vertical(classes="panel", id="trends-panel"):
                yield Static("Coverage, last 30 days", classes="panel-title")
                yield Vertical(id="trends")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        funnel = self.query_one("#funnel", DataTable)
        funnel.add_columns("stage", "customers", "coverage", "conversion")
        messages = self.query_one("#messages", DataTable)
        messages.add_columns("channel", "outcome", "today", "week")

    async def load(self) -> None:
        context = self.context
        async with context.store.reading() as session:
            overview = await dashboard_overview(
                session, context.program, context.settings, clock.now()
            )
        self.show(overview)

    def show(self, overview: Overview) -> None:
        """Lay ``overview`` out on the panels."""
        funnel = self.query_one("#funnel", DataTable)
        funnel.clear()
        for stage in overview.stages:
            funnel.add_row(
                stage.name,
                count_text(stage.customers),
                kpi_text(stage.kpis.get("coverage")),
                kpi_text(stage.kpis.get("conversion")),
                key=stage.name,
            )
        messages = self.query_one("#messages", DataTable)
        messages.clear()
        for tally in overview.messages:
            messages.add_row(
                tally.channel, tally.outcome, count_text(tally.today), count_text(tally.week)
            )
        if not overview.messages:
            messages.add_row("-", "none this week", "", "")
        self.query_one("#health", Static).update(_health_text(overview))
        self.query_one("#programme", Static).update(_programme_text(overview))
        self._show_trends(overview)

    def _show_trends(self, overview: Overview) -> None:
        trends = self.query_one("#trends", Vertical)
        series = {
            stage.name: overview.trends.get(stage.name, {}).get("coverage", [])
            for stage in overview.stages
        }
        shown = {name: values for name, values in series.items() if len(values) > 1}
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


def _programme_text(overview: Overview) -> Text:
    text = Text("automated share ", style="bold")
    text.append_text(kpi_text(overview.automated_share))
    day = overview.snapshot_day
    text.append(f"\nKPIs as of {day:%Y-%m-%d}" if day else "\nno KPI snapshot yet", style="dim")
    return text
