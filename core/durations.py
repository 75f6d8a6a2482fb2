"""Durations as program files and rules write them: a whole number and a unit, e.g. ``21d``."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"([0-9]{1,6})([mhdw])")
_UNITS = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
DURATION_FORMAT = "a duration such as 30m, 12h, 21d or 2w"


def parse_duration(text: str) -> timedelta | None:
    """``text`` as a duration (units ``m``, ``h``, ``d``, ``w``), or None if it is not one."""
    match = _DURATION.fullmatch(text)
    return None if match is None else int(match.group(1)) * _UNITS[match.group(2)]


def describe_span(span: timedelta) -> str:
    """A span as people read it, in the largest unit that fits: ``4.2s``, ``3m``, ``1.5h``."""
    seconds = span.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
