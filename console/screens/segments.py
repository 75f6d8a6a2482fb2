"""The segments: each with its size, how it moved over the last week and the campaigns that
target it; the one under the cursor in full below the table."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Header, Static

from console.screens.base import StoreScreen
from console.widgets.figures import count_text, moment_text, spark_text
from console.widgets.footer import KeysFooter
from console.widgets.tables import highlighted_key, refill
from core import clock
from core.segment_overview import TREND_DAYS, SegmentRow, segment_overview


class SegmentsScreen(StoreScreen):
    """Every segment of the program: size, entered and left over :data:`TREND_DAYS` days,
    the daily sizes as a sparkline, and the campaigns using it."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[str, SegmentRow] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="panel", id="segments-panel"):
            yield Static(f"Segments: size, last {TREND_DAYS} days", classes="panel-title")
            yield DataTable(id="segments", cursor_type="row", zebra_stripes=True)
        with Vertical(classes="panel", id="segment-panel"):
            yield Static("", classes="panel-title", id="segment-title")
            yield Static("reading the store...", id="segment-detail")
        yield KeysFooter()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#segments", DataTable).add_columns(
            "segment", "size", "in", "out", "trend", "campaigns"
        )

    async def load(self) -> None:
        context = self.context
        async with context.store.reading() as session:
            rows = await segment_overview(session, context.program, clock.now())
        self.show(rows)

    def show(self, rows: list[SegmentRow]) -> None:
        self._rows = {row.summary.name: row for row in rows}
        table = self.query_one("#segments", DataTable)
        refill(
            table,
            [
                (
                    row.summary.name,
                    [
                        row.summary.name,
                        count_text(row.summary.size),
                        Text(f"+{row.trend.entered:,}", style="green", justify="right"),
                        Text(f"-{row.trend.left:,}", style="red", justify="right"),
                        spark_text(row.trend.sizes),
                        ", ".join(use.campaign for use in row.campaigns) or "-",
                    ],
                )
                for row in rows
            ],
        )
        self._show_segment(highlighted_key(table))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_segment(event.row_key.value)

    def _show_segment(self, name: str | None) -> None:
        title = self.query_one("#segment-title", Static)
        detail = self.query_one("#segment-detail", Static)
        row = self._rows.get(name or "")
        if row is None:
            title.update("")
            detail.update("the program has no segments" if not self._rows else "")
            return
        title.update(row.summary.name)
        detail.update(self._segment_text(row))

    def _segment_text(self, row: SegmentRow) -> Text:
        summary = row.summary
        text = Text(f"{summary.description}\n")
        # The summaries are the program's own segments, so each has its definition.
        text.append("rule  ", style="bold")
        text.append(f"{self.context.program.segment(summary.name).spec.rule}\n")
        if summary.stage:
            text.append("stage ", style="bold")
            text.append(f"{summary.stage}\n")
        if summary.tags:
            text.append(f"tags  {', '.join(summary.tags)}\n", style="dim")
        refreshed = moment_text(summary.refreshed_at, self.context.settings.zone)
        text.append(f"{summary.size:,} customers, refreshed {refreshed}")
        text.append(f" (+{summary.entered:,} -{summary.left:,} then)\n", style="dim")
        sizes = row.trend.sizes
        if sizes:
            text.append(f"daily sizes {spark_text(sizes)} {sizes[0]:,} -> {sizes[-1]:,}\n")
        if row.campaigns:
            text.append("used by ", style="bold")
            for index, use in enumerate(row.campaigns):
                text.append(", " if index else "")
                text.append(use.campaign)
                text.append(f" ({use.kind}, {use.status})", style="dim")
        else:
            text.append("no campaign targets it", style="dim")
        return text
