"""The scheduler: who leads, the jobs and when they fire next, what runs now, what ran, and
this process's log as it is written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import DataTable, Header, Log, Static

from console.log_tail import LINES
from console.screens.base import StoreScreen
from console.widgets.figures import moment_text
from console.widgets.footer import KeysFooter
from console.widgets.tables import highlighted_key, refill
from core import clock
from core.durations import describe_span
from core.scheduler.records import (
    JobRecord,
    NodeStatus,
    recent_job_runs,
    running_job_runs,
    scheduler_nodes,
)

RECENT_RUNS = 50
"""How many of the latest job runs the screen lists."""
STALE_SECONDS = 30
"""A heartbeat older than this is shown in red: the node is probably gone."""
_STATUS_STYLES = {
    "ok": "green",
    "running": "cyan",
    "failed": "bold red",
    "cancelled": "yellow",
    "interrupted": "yellow",
}


@dataclass(frozen=True)
class SchedulerView:
    """What the screen shows, as read at ``now``."""

    now: datetime
    nodes: list[NodeStatus]
    running: list[JobRecord]
    recent: list[JobRecord]

    @property
    def leader(self) -> NodeStatus | None:
        return next((node for node in self.nodes if node.role == "leader"), None)


class SchedulerScreen(StoreScreen):
    """Nodes and their heartbeats, jobs with their next fire time, running and recent job
    runs (a failed one's error under the table), and the live log tail."""

    LIVE: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self._log_written = 0
        self._runs: dict[str, JobRecord] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Grid(id="scheduler"):
            with Vertical(classes="panel", id="nodes-panel"):
                yield Static("Nodes and jobs", classes="panel-title")
                yield Static("reading the store...", id="nodes")
                yield DataTable(id="jobs", cursor_type="none", zebra_stripes=True)
            with Vertical(classes="panel", id="running-panel"):
                yield Static("Running now", classes="panel-title")
                yield DataTable(id="running", cursor_type="none")
            with Vertical(classes="panel", id="runs-panel"):
                yield Static("Recent job runs", classes="panel-title")
                yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
                yield Static("", id="run-detail")
            with Vertical(classes="panel", id="log-panel"):
                yield Static("Log (this process)", classes="panel-title")
                yield Log(id="log", max_lines=LINES)
        yield KeysFooter()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#jobs", DataTable).add_columns("job", "next fire", "in")
        self.query_one("#running", DataTable).add_columns("job", "node", "started", "running for")
        self.query_one("#runs", DataTable).add_columns("started", "job", "status", "took", "counts")

    async def load(self) -> None:
        now = clock.now()
        async with self.context.store.reading() as session:
            view = SchedulerView(
                now=now,
                nodes=await scheduler_nodes(session, now),
                running=await running_job_runs(session),
                recent=await recent_job_runs(session, limit=RECENT_RUNS),
            )
        self.show(view)

    def show(self, view: SchedulerView) -> None:
        """Lay ``view`` out on the panels and add the log lines written since the last look."""
        zone = self.context.settings.zone
        self.query_one("#nodes", Static).update(_nodes_text(view))
        refill(self.query_one("#jobs", DataTable), _job_rows(view, zone))
        running = [
            (
                str(run.id),
                [
                    run.job,
                    run.node,
                    moment_text(run.started_at, zone),
                    describe_span(view.now - run.started_at),
                ],
            )
            for run in view.running
        ]
        refill(
            self.query_one("#running", DataTable),
            running or [("none", ["-", "nothing running", "", ""])],
        )
        self._runs = {str(run.id): run for run in view.recent}
        runs = self.query_one("#runs", DataTable)
        refill(runs, [(str(run.id), _run_cells(run, view.now, zone)) for run in view.recent])
        self._show_run(highlighted_key(runs))
        self._tail_log()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "runs":
            self._show_run(event.row_key.value)

    def _show_run(self, key: str | None) -> None:
        detail = self.query_one("#run-detail", Static)
        run = self._runs.get(key or "")
        if run is None:
            detail.update("no job runs recorded yet" if not self._runs else "")
            return
        text = Text(f"{run.job} on {run.node}: ", style="bold")
        text.append(run.status, style=_STATUS_STYLES.get(run.status, ""))
        if run.error:
            text.append("\n")
            text.append(run.error.strip(), style="red")
        elif run.counts:
            text.append(f"  {_counts(run.counts)}")
        detail.update(text)

    def _tail_log(self) -> None:
        tail = self.cadence.log_tail
        lines = tail.since(self._log_written)
        self._log_written = tail.written
        if lines:
            self.query_one("#log", Log).write_lines(lines)


def _nodes_text(view: SchedulerView) -> Text:
    text = Text()
    if view.leader is None:
        text.append("no leader", style="bold red")
        text.append(": nothing fires until one runs `cadence run`\n")
    for node in view.nodes:
        stale = node.heartbeat_age.total_seconds() > STALE_SECONDS
        text.append(f"{node.role:<8} ", style="bold" if node.role == "leader" else "")
        text.append(node.node)
        text.append(
            f"  heartbeat {describe_span(node.heartbeat_age)} ago",
            style="red" if stale else "green",
        )
        text.append(f"  up {describe_span(view.now - node.started_at)}\n", style="dim")
    if not view.nodes:
        text.append("no node has a heartbeat\n", style="dim")
    text.rstrip()
    return text


def _job_rows(view: SchedulerView, zone: ZoneInfo) -> list[tuple[str, list[str]]]:
    """The leader's jobs, soonest first; a job without a next time (paused) last."""
    leader = view.leader
    if leader is None or not leader.jobs:
        return [("none", ["-", "no jobs: no leader", ""])]
    fires = {name: _moment(value) for name, value in leader.jobs.items()}
    ordered = sorted(fires.items(), key=lambda item: (item[1] is None, item[1] or view.now))
    return [
        (
            name,
            [
                name,
                moment_text(moment, zone),
                describe_span(max(moment - view.now, timedelta())) if moment else "paused",
            ],
        )
        for name, moment in ordered
    ]


def _moment(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _run_cells(run: JobRecord, now: datetime, zone: ZoneInfo) -> list[str | Text]:
    end = run.finished_at or now
    return [
        moment_text(run.started_at, zone),
        run.job,
        Text(run.status, style=_STATUS_STYLES.get(run.status, "")),
        describe_span(end - run.started_at),
        _counts(run.counts) if run.counts else "",
    ]


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(
        f"{name} {value:,}" if isinstance(value, int) else f"{name} {value}"
        for name, value in counts.items()
    )
