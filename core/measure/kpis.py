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

from core.models import Event, OutboxMessage


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


CEILING_KPIS = frozenset(
    {"churn", "messages_per_customer_week", "opt_out_rate", "complaint_rate", "bounce_rate"}
)
"""The KPIs whose target is a ceiling: lower is better."""


def kpi_value(name: str, value: float | None, target: float | None) -> KpiValue:
    """The KPI ``name``'s value against its target, in the direction its name implies."""
    return KpiValue(value, target, higher_is_better=name not in CEILING_KPIS)


def share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def sent_within(window: Window) -> tuple[ColumnElement[Any], ...]:
    """Outbox rows sent inside ``window``: the messages customers received.

    Only a sent row has a ``sent_at``, so the time alone says it, and coverage reads
    the ``(customer_id, sent_at, ...)`` index without touching the rows.
    """
    outbox = OutboxMessage.__table__.c
    return (outbox.sent_at > window.start, outbox.sent_at <= window.end)


def events_within(window: Window, *types: str) -> tuple[ColumnElement[bool], ...]:
    """Events of ``types`` inside ``window``: the events index (type, customer_id,
    occurred_at, value) holds all a KPI reads of them, so they are read without touching
    the rows."""
    events = Event.__table__.c
    return (
        events.type.in_(types),
        events.occurred_at > window.start,
        events.occurred_at <= window.end,
    )
