"""The one report writer: table, CSV (safe to open in a spreadsheet) and JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from rich.console import Console

from core.measure.export import Column, Report, as_csv, as_json, csv_cell, write_report
from core.measure.uplift import Verdict

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("a=b", "a=b"),
        ("offer-a", "offer-a"),
        (-0.0125, "-0.0125"),  # numbers stay numbers: a negative uplift is no formula
        (-3, "-3"),
        (None, ""),
        (True, "true"),
        (float("nan"), ""),
        (AT, "2026-11-23T12:00:00+00:00"),
        (Verdict.NO_CONTROL, "no control group, uplift unknown"),
    ],
)
def test_csv_cells_cannot_become_formulas(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


def _report() -> Report:
    return Report(
        name="sample",
        title="A sample",
        columns=[
            Column("name"),
            Column("rate", "conv.", lambda value: f"{value:.1%}", numeric=True),
            Column("raw", table=False),
            Column("view", "shown only", export=False),
        ],
        rows=[
            {"name": "=cmd|' /C calc'!A0", "rate": 0.05, "raw": -1.5, "view": "v1"},
            {"name": "plain", "rate": 0.25, "raw": None, "view": "v2"},
        ],
        totals={"name": "total", "rate": 0.1, "raw": 7, "view": "v3"},
        notes=["a note"],
        meta={"as_of": AT},
    )


def test_csv_has_every_exported_column_the_totals_last_and_escaped_text() -> None:
    rows = list(csv.reader(io.StringIO(as_csv(_report()), newline="")))
    assert rows == [
        ["name", "rate", "raw"],
        ["'=cmd|' /C calc'!A0", "0.05", "-1.5"],
        ["plain", "0.25", ""],
        ["total", "0.1", "7"],
    ]


def test_json_keeps_raw_values_meta_and_totals() -> None:
    document = json.loads(as_json(_report()))
    assert document == {
        "report": "sample",
        "as_of": "2026-11-23T12:00:00+00:00",
        "rows": [
            {"name": "=cmd|' /C calc'!A0", "rate": 0.05, "raw": -1.5},
            {"name": "plain", "rate": 0.25, "raw": None},
        ],
        "totals": {"name": "total", "rate": 0.1, "raw": 7},
    }


def test_the_table_shows_the_formatted_table_columns_and_the_notes() -> None:
    console = Console(record=True, width=120, color_system=None)
    write_report(_report(), "table", console)
    text = console.export_text()
    assert "A sample" in text and "conv." in text and "shown only" in text
    assert "5.0%" in text and "25.0%" in text and "v3" in text
    assert "raw" not in text and "-1.5" not in text  # a CSV/JSON-only column
    assert text.rstrip().endswith("a note")
