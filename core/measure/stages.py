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
(``coverage_30d`` for a 30-day window). Everything comes from two statements whatever
the number of customers: one over the stage history, the window's sent messages and
the window's purchases, one over the window's moves.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import event_types
from core.db.dialect import skip_jit
from core.lifecycle import stages_at
from core.measure.kpis import KpiValue, Window, events_within, kpi_value, sent_within, share
from core.models import Event, OutboxMessage, StageTransition
from core.program import Program, Stage


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
    for end_stage, start_stage, customers, messaged, converted, revenue, churned in (
        await session.execute(_per_stage_pair(program, window))
    ).all():
        at_end, at_start = tallies[end_stage], tallies[start_stage]
        at_end.customers += customers
        at_end.messaged += messaged
        if start_stage is not None:
            at_start.cohort += customers
            at_start.converted += converted
            at_start.revenue += float(revenue or 0)
            at_start.churned += churned
    moves = StageTransition.__table__.c
    flows = (
        select(moves.from_stage, moves.to_stage, func.count())
        .where(moves.at > window.start, moves.at <= window.end)
        .group_by(moves.from_stage, moves.to_stage)
    )
    for from_stage, to_stage, count in (await session.execute(flows)).all():
        if from_stage is None:
            tallies[to_stage].placed += count
        else:
            tallies[to_stage].entered += count
            tallies[from_stage].left += count
    dormant = program.dormant_stage
    return [
        _stage_kpis(stage, tallies[stage.name], window, dormant is not None and stage != dormant)
        for stage in program.stages
    ]


def _per_stage_pair(program: Program, window: Window) -> Any:
    """Per (stage at the end, stage at the start): customers, how many were sent a message
    in the window, bought in it (and for how much) and went dormant in it."""
    placement = stages_at({"at_end": window.end, "at_start": window.start})
    outbox = OutboxMessage.__table__.c
    messaged = (
        select(outbox.customer_id).where(*sent_within(window)).group_by(outbox.customer_id)
    ).subquery("messaged")
    bought = (
        select(Event.customer_id, func.sum(Event.value).label("revenue"))
        .where(*events_within(window, event_types.PURCHASE))
        .group_by(Event.customer_id)
    ).subquery("bought")
    source = placement.outerjoin(
        messaged, messaged.c.customer_id == placement.c.customer_id
    ).outerjoin(bought, bought.c.customer_id == placement.c.customer_id)
    churned: Any = 0
    dormant = program.dormant_stage
    if dormant is not None:
        moves = StageTransition.__table__.c
        went_dormant = (
            select(moves.customer_id)
            .where(
                moves.to_stage == dormant.name,
                moves.at > window.start,
                moves.at <= window.end,
            )
            .group_by(moves.customer_id)
        ).subquery("went_dormant")
        source = source.outerjoin(
            went_dormant, went_dormant.c.customer_id == placement.c.customer_id
        )
        churned = func.count(went_dormant.c.customer_id)
    return (
        select(
            placement.c.at_end,
            placement.c.at_start,
            func.count(),
            func.count(messaged.c.customer_id),
            func.count(bought.c.customer_id),
            func.sum(bought.c.revenue),
            churned,
        )
        .select_from(source)
        .group_by(placement.c.at_end, placement.c.at_start)
    )


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
