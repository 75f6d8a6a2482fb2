"""Filling a DataTable again without losing the operator's place in it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

Row = tuple[str, Sequence[object]]
"""A row's key and its cells (text or any Rich renderable)."""


def refill(table: DataTable[Any], rows: Iterable[Row]) -> None:
    """Replace every row of ``table`` with ``rows``; the cursor stays on the row it was on
    when that row is still there (a live screen reloads under the operator's cursor)."""
    current = highlighted_key(table)
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if current is not None and current in table.rows:
        table.move_cursor(row=table.get_row_index(current), animate=False, scroll=False)


def highlighted_key(table: DataTable[Any]) -> str | None:
    """The key of the row under the cursor; None for an empty table."""
    if not table.row_count or not table.is_valid_row_index(table.cursor_row):
        return None
    key: RowKey = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
    return key.value
