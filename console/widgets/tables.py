"""Filling a DataTable again without losing the operator's place in it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

Row = tuple[str, Sequence[object]]
"""A row's key and its cells (text or any Rich renderable)."""


def refill(table: DataTable[Any], rows: Iterable[Row]) -> None:
    """Replace every row of ``table`` with ``rows``; the cursor stays on the row it was on
    when that row is still there (a live screen reloads under the operator's cursor).

    When the rows are the ones shown, in the same order (a live screen's reload, mostly),
    and few of their cells changed, only those are written: clearing the table would
    measure and lay out every cell again. Many are not: a changed cell narrower than its
    column makes the table measure the whole column again.
    """
    rows = list(rows)
    if [key for key, _ in rows] == [row.key.value for row in table.ordered_rows]:
        columns = [column.key for column in table.ordered_columns]
        changed = [
            (key, column, cell)
            for key, cells in rows
            for column, cell, shown in zip(columns, cells, table.get_row(key), strict=True)
            if not _same(cell, shown)
        ]
        if len(changed) <= len(columns):
            for key, column, cell in changed:
                table.update_cell(key, column, cell, update_width=True)
            return
    current = highlighted_key(table)
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if current is not None and current in table.rows:
        table.move_cursor(row=table.get_row_index(current), animate=False, scroll=False)


def _same(cell: object, shown: object) -> bool:
    """Whether ``cell`` looks like ``shown``; Rich's ``Text`` equality leaves out the
    style and the justification."""
    if isinstance(cell, Text) and isinstance(shown, Text):
        return (cell.plain, cell.style, cell.spans, cell.justify) == (
            shown.plain,
            shown.style,
            shown.spans,
            shown.justify,
        )
    return type(cell) is type(shown) and cell == shown


def highlighted_key(table: DataTable[Any]) -> str | None:
    """The key of the row under the cursor; None for an empty table."""
    if not table.row_count or not table.is_valid_row_index(table.cursor_row):
        return None
    key: RowKey = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
    return key.value
