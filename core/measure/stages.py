"""Stage KPIs: how big each lifecycle stage is, how it moves, and how well it is served.

Over a window of ``days`` days up to a moment (see :class:`~core.measure.kpis.Window`),
per stage of the program:

- **customers**: in the stage at the end (from the stage history, so a past moment
  reads who was there then);
- **entered** / **left**: moves into and out of the stage inside the window, and
  **placed**: customers new to the program whose first stage it was;
- **coverage**: the share of the stage's customers at the end who were sent at least
  one message (an outbox row sent) inside the window;
- **conversion**: of the customers in the stage at the window's start (the *cohort*),
  the share who made a purchase inside the window. The cohort is taken at the start
  because a purchase moves many customers on (a registered customer who buys is new at
  the next refresh): measured on the stage at the end, its converts would be gone;
- **revenue per customer**: the cohort's purchases inside the window, per cohort member;
- **churn**: the share of the cohort that entered the dormant stage ("inactive") inside
  the window, whichever way; none for the dormant stage itself.

A target from the program applies when its key names the KPI and the window
(``coverage_30d`` for a 30-day window).

Nobody's stage at a moment is worked out one customer at a time: a set of customers
(everyone, the messaged, the buyers, those gone dormant) is counted by the stage each is
in now, and the moves its members made after the moment are undone (out of the stage a
move went to, back into the one it came from; see :mod:`core.lifecycle`). So whatever the
number of customers there are a few statements, each reading one set once: the stages now
and the moves after the window's start through their indexes, the messaged through the
outbox's customer index, the buyers and the dormant from their own few rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    Table,
    exists,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core import event_types
from core.db.dialect import skip_jit
from core.measure.kpis import KpiValue, Window, events_within, kpi_value, sent_within, share
from core.models import CustomerStage, Event, OutboxMessage, StageTransition
from core.program import Program, Stage

_CURRENT: Table = CustomerStage.__table__  # type: ignore[assignment]
_MOVES: Table = StageTransition.__table__  # type: ignore[assignment]
_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class StageKpis:
    """One stage over one window."""

    name: str
    objective: str
    customers: int
    entered: int
    """Moves into the stage from another one."""
    placed: int
    """Customers placed in a stage for the first time, in this one."""
    left: int
    cohort: int
    """Customers in the stage at the window's start: what conversion, revenue and churn
    are shares of."""
    messaged: int
    """Customers in the stage at the end who were sent a message inside the window."""
    converted: int
    revenue: float
    churned: int
    coverage: KpiValue
    conversion: KpiValue
    revenue_per_customer: KpiValue
    churn: KpiValue

    def counts(self) -> dict[str, float]:
        """The plain numbers, by name."""
        return {
            "customers": self.customers,
            "entered": self.entered,
            "placed": self.placed,
            "left": self.left,
            "cohort": self.cohort,
            "messaged": self.messaged,
            "converted": self.converted,
            "revenue": self.revenue,
            "churned": self.churned,
        }

    def kpis(self) -> dict[str, KpiValue]:
        """The KPIs that have targets, by name."""
        return {
            "coverage": self.coverage,
            "conversion": self.conversion,
            "revenue_per_customer": self.revenue_per_customer,
            "churn": self.churn,
        }


@dataclass
class _Tally:
    customers: int = 0
    messaged: int = 0
    cohort: int = 0
    converted: int = 0
    revenue: float = 0.0
    churned: int = 0
    entered: int = 0
    placed: int = 0
    left: int = 0


async def stage_kpis(session: AsyncSession, program: Program, window: Window) -> list[StageKpis]:
    """Every stage of ``program`` over ``window``, in program order."""
    await skip_jit(session)
    tallies: defaultdict[str | None, _Tally] = defaultdict(_Tally)
    current, moves = _CURRENT.c, _MOVES.c
    # Everyone: by the stage they are in now, then the moves after the start undone (a
    # move after the end undone for both moments); the moves inside are the flows.
    everyone = select(current.stage, func.count()).group_by(current.stage)
    for stage, count in (await session.execute(everyone)).all():
        tallies[stage].customers += count
        tallies[stage].cohort += count
    later = (
        select(
            moves.from_stage,
            moves.to_stage,
            func.count().filter(moves.at > window.end),
            func.count().filter(moves.at <= window.end),
        )
        .where(moves.at > window.start)
        .group_by(moves.from_stage, moves.to_stage)
    )
    for from_stage, to_stage, after, inside in (await session.execute(later)).all():
        _undo(tallies, from_stage, to_stage, "customers", after)
        _undo(tallies, from_stage, to_stage, "cohort", after + inside)
        if from_stage is None:
            tallies[to_stage].placed += inside
        else:
            tallies[to_stage].entered += inside
            tallies[from_stage].left += inside
    # Sent a message, by the stage at the end. Most customers may have been, so each one's
    # messages are looked up in the outbox's (customer_id, sent_at, ...) index: grouping
    # every message by customer first reads them all, then looks each customer up anyway.
    outbox = _OUTBOX.c
    sent = exists().where(*sent_within(window))
    messaged = union_all(
        _by_stage_now().where(sent.where(outbox.customer_id == current.customer_id)),
        _moves_after(window.end, sent.where(outbox.customer_id == moves.customer_id)),
    )
    await _tally(session, tallies, "messaged", messaged)
    # Bought inside the window, and went dormant inside it, by the stage at the start:
    # starting from those customers, a few of everyone.
    bought = (
        select(Event.customer_id, func.sum(Event.value).label("revenue"))
        .where(*events_within(window, event_types.PURCHASE))
        .group_by(Event.customer_id)
    ).cte("bought")
    await _tally(session, tallies, "converted", _joined(bought, window.start, bought.c.revenue))
    dormant = program.dormant_stage
    if dormant is not None:
        went_dormant = (
            select(moves.customer_id)
            .where(
                moves.to_stage == dormant.name,
                moves.at > window.start,
                moves.at <= window.end,
            )
            .group_by(moves.customer_id)
        ).cte("went_dormant")
        await _tally(session, tallies, "churned", _joined(went_dormant, window.start))
    return [
        _stage_kpis(stage, tallies[stage.name], window, dormant is not None and stage != dormant)
        for stage in program.stages
    ]


def _moves_after(moment: datetime, *where: ColumnElement[bool], value: Any = None) -> Select[Any]:
    """Per (from, to) stage: the moves after ``moment`` (of the customers ``where`` picks)
    and ``value`` summed over them; a first column says these rows are moves."""
    moves = _MOVES.c
    figures = [func.count(), *([] if value is None else [func.sum(value)])]
    return (
        select(literal(True).label("moved"), moves.from_stage, moves.to_stage, *figures)
        .where(moves.at > moment, *where)
        .group_by(moves.from_stage, moves.to_stage)
    )


def _by_stage_now(value: Any = None) -> Select[Any]:
    """Per stage now, the customers in it (add what picks them) and ``value`` summed, in
    the columns of :func:`_moves_after`."""
    current = _CURRENT.c
    figures = [func.count(), *([] if value is None else [func.sum(value)])]
    return select(
        literal(False).label("moved"), literal(None, String()), current.stage, *figures
    ).group_by(current.stage)


def _joined(members: CTE, moment: datetime, value: Any = None) -> CompoundSelect[Any]:
    """For :func:`_tally`: ``members`` (one row per ``customer_id``) by their stage now,
    and their moves after ``moment``, each with ``value`` summed. Both read ``members``,
    which is worked out once (a common table expression used twice)."""
    current, moves = _CURRENT.c, _MOVES.c
    now = _by_stage_now(value).select_from(
        members.join(_CURRENT, current.customer_id == members.c.customer_id)
    )
    moved = _moves_after(moment, value=value).select_from(
        members.join(_MOVES, moves.customer_id == members.c.customer_id)
    )
    return union_all(now, moved)


async def _tally(
    session: AsyncSession,
    tallies: defaultdict[str | None, _Tally],
    field: str,
    statement: CompoundSelect[Any],
) -> None:
    """Add to ``field`` of each stage how many customers were in it at a moment, from the
    rows of :func:`_by_stage_now` (customers per stage now) and :func:`_moves_after`
    (their moves after the moment, which are undone). A further figure is a value summed
    into ``revenue`` alike."""
    for moved, from_stage, stage, count, *value in (await session.execute(statement)).all():
        if moved:
            _undo(tallies, from_stage, stage, field, count)
        else:
            setattr(tallies[stage], field, getattr(tallies[stage], field) + count)
        if value:
            summed = float(value[0] or 0)
            if moved:
                _undo(tallies, from_stage, stage, "revenue", summed)
            else:
                tallies[stage].revenue += summed


def _undo(
    tallies: defaultdict[str | None, _Tally],
    from_stage: str | None,
    to_stage: str,
    field: str,
    count: float,
) -> None:
    """Take ``count`` customers (or their value) that moved from ``from_stage`` to
    ``to_stage`` back where they came from: out of ``to_stage``, into ``from_stage``
    unless the move placed them for the first time."""
    setattr(tallies[to_stage], field, getattr(tallies[to_stage], field) - count)
    if from_stage is not None:
        setattr(tallies[from_stage], field, getattr(tallies[from_stage], field) + count)


def _stage_kpis(stage: Stage, tally: _Tally, window: Window, can_churn: bool) -> StageKpis:
    def target(kpi: str) -> float | None:
        return stage.spec.kpi.get(f"{kpi}_{window.days}d")

    return StageKpis(
        name=stage.name,
        objective=stage.spec.objective,
        customers=tally.customers,
        entered=tally.entered,
        placed=tally.placed,
        left=tally.left,
        cohort=tally.cohort,
        messaged=tally.messaged,
        converted=tally.converted,
        revenue=round(tally.revenue, 2),
        churned=tally.churned,
        coverage=KpiValue(share(tally.messaged, tally.customers), target("coverage")),
        conversion=KpiValue(share(tally.converted, tally.cohort), target("conversion")),
        revenue_per_customer=KpiValue(
            share(round(tally.revenue, 2), tally.cohort), target("revenue_per_customer")
        ),
        churn=kpi_value(
            "churn", share(tally.churned, tally.cohort) if can_churn else None, target("churn")
        ),
    )
