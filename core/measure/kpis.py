"""What stage and program KPIs share: the window they are measured over, a KPI's value
beside its target, and which outbox rows count as messages received.

Every KPI describes a moment (``Window.end``: now for a report, the end of a day for a
snapshot) and reads only what happened up to it, so the same moment gives the same
numbers however much happened since.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement

from core.models import OutboxMessage
from core.program.model import CHANNEL_NAMES


@dataclass(frozen=True)
class Window:
    """The ``days`` days up to ``end``: everything after ``start`` and up to ``end`` counts."""

    end: datetime
    days: int

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


@dataclass(frozen=True)
class KpiValue:
    """A KPI's value and the program's target for it, if it has one."""

    value: float | None
    """None when the KPI is a share of nobody."""
    target: float | None = None
    higher_is_better: bool = True

    @property
    def gap(self) -> float | None:
        """Value minus target: positive is above the target."""
        if self.value is None or self.target is None:
            return None
        return self.value - self.target

    @property
    def met(self) -> bool | None:
        gap = self.gap
        if gap is None:
            return None
        return gap >= 0 if self.higher_is_better else gap <= 0


def share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def sent_within(window: Window) -> tuple[ColumnElement[Any], ...]:
    """Outbox rows sent inside ``window``: the messages customers received.

    Naming every channel lets both databases read the range through the
    ``(channel, sent_at)`` index instead of the whole outbox.
    """
    outbox = OutboxMessage.__table__.c
    return (
        outbox.channel.in_(CHANNEL_NAMES),
        outbox.sent_at > window.start,
        outbox.sent_at <= window.end,
        outbox.state == "sent",
    )
