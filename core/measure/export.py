"""One writer for every ``cadence report``: a terminal table, CSV or JSON from one
:class:`Report`.

A report is rows of plain values (numbers, text, times, None) under named columns. The
table shows each column's :attr:`Column.show` text and leaves out the columns marked
``table=False`` (a terminal is narrow); CSV and JSON carry every column but the
table-only views (``export=False``), with the raw values, so a spreadsheet or a script
gets the numbers, not their rounding.

CSV is written to be opened in a spreadsheet safely: a text cell starting with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return would be read as a formula (CSV
injection), so it gets a leading apostrophe. Numbers are written as numbers: the writer
produces them itself, a number cannot be a formula, and escaping it would turn every
negative uplift into text.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.table import Table

ReportFormat = Literal["table", "csv", "json"]
FORMATS: tuple[ReportFormat, ...] = ("table", "csv", "json")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def plain(value: Any) -> str:
    """A value as table text: ``-`` for none, thousands separated for whole numbers."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)


@dataclass(frozen=True)
class Column:
    """A report column: its key (CSV header, JSON field), its table header, how the table
    shows a value, and where it appears."""

    key: str
    header: str | None = None
    show: Callable[[Any], str] = plain
    numeric: bool = False
    table: bool = True
    export: bool = True
    """Whether CSV and JSON carry the column (not: a table-only view of other columns)."""
    wrap: bool = True
    """Whether a narrow terminal may wrap the column's cells; names should stay whole."""

    @property
    def title(self) -> str:
        return self.header or self.key.replace("_", " ")


@dataclass(frozen=True)
class Report:
    """What a report command prints: rows under columns, an optional totals row (a
    separate row in the table and the CSV, ``totals`` in the JSON), notes under the table
    and ``meta`` (the moment it is as of, for instance) at the top of the JSON."""

    name: str
    title: str
    columns: Sequence[Column]
    rows: Sequence[Mapping[str, Any]]
    totals: Mapping[str, Any] | None = None
    notes: Sequence[str] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)


def write_report(report: Report, output_format: ReportFormat, console: Console) -> None:
    """Print ``report`` on ``console`` as a table, CSV or JSON."""
    if output_format == "table":
        console.print(as_table(report))
        for note in report.notes:
            console.print(note, highlight=False, markup=False)
    elif output_format == "csv":
        console.file.write(as_csv(report))
    else:
        console.file.write(as_json(report) + "\n")
    console.file.flush()


def as_table(report: Report) -> Table:
    table = Table(title=report.title, box=box.SIMPLE_HEAD, pad_edge=False)
    shown = [column for column in report.columns if column.table]
    for column in shown:
        table.add_column(
            column.title, justify="right" if column.numeric else "left", no_wrap=not column.wrap
        )
    for index, row in enumerate(report.rows):
        last = index == len(report.rows) - 1 and report.totals is not None
        table.add_row(*(column.show(row.get(column.key)) for column in shown), end_section=last)
    if report.totals is not None:
        table.add_row(*(column.show(report.totals.get(column.key)) for column in shown))
    return table


def as_csv(report: Report) -> str:
    """Every column, raw values, the totals as the last row; text cells escaped."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    exported = [column for column in report.columns if column.export]
    writer.writerow([csv_cell(column.key) for column in exported])
    rows = [*report.rows, *([report.totals] if report.totals is not None else [])]
    for row in rows:
        writer.writerow([csv_cell(row.get(column.key)) for column in exported])
    return buffer.getvalue()


def csv_cell(value: Any) -> str:
    """A value as a CSV cell a spreadsheet cannot run as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "" if isinstance(value, float) and not math.isfinite(value) else repr(value)
    text = _text(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def as_json(report: Report) -> str:
    document: dict[str, Any] = {"report": report.name, **report.meta}
    keys = [column.key for column in report.columns if column.export]
    document["rows"] = [{key: row.get(key) for key in keys} for row in report.rows]
    if report.totals is not None:
        document["totals"] = {key: report.totals.get(key) for key in keys}
    return json.dumps(_json_value(document), ensure_ascii=False)


def _json_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Enum | datetime | date):
        return _text(value)
    return value


def _text(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
