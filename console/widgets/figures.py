"""How the console writes numbers: the same words and colours as ``cadence report``."""

from __future__ import annotations

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
