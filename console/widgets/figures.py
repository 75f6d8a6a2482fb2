"""How the console writes numbers: the same words and colours as ``cadence report``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from rich.text import Text

from core.measure.kpi_report import against_target, percent
from core.measure.kpis import KpiValue

_AGAINST_TARGET = against_target(percent)


def kpi_text(kpi: KpiValue | None) -> Text:
    """A share against its target: green when met, red when not, ``-`` for nobody."""
    return Text.from_markup(_AGAINST_TARGET(kpi))


def count_text(value: int) -> Text:
    return Text(f"{value:,}", justify="right")


def moment_text(value: datetime | None, zone: ZoneInfo) -> str:
    """A moment in the program's time zone, to the second; ``-`` for none."""
    if value is None:
        return "-"
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


_BARS = "▁▂▃▄▅▆▇█"


def spark_text(values: Sequence[int | float]) -> str:
    """``values`` as a one-line sparkline of block characters, for a table cell (a flat
    series is a flat line); empty for no values."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    if not span:
        return _BARS[0] * len(values)
    top = len(_BARS) - 1
    return "".join(_BARS[round((value - low) / span * top)] for value in values)
