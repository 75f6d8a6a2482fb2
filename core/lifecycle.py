"""Lifecycle stages: who is in which stage now, and every move between stages.

:func:`refresh_stages` places every customer in exactly one stage in one
transaction, with a handful of set-based statements whatever the number of
customers: the first stage (in program order) whose rule holds wins, the
program's fallback stage takes whoever no rule matches, and each change is
recorded in ``stage_transitions``. An interrupted refresh changes nothing.

A customer's moves form one chain, each starting where the one before ended and
the last ending in the stage they are in now; so the stage at a past moment is
the stage now with the moves after that moment undone, which is how measurement
(:mod:`core.measure.stages`) reads the past.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    FromClause,
    MetaData,
    String,
    Table,
    case,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.dialect import (
    age_in_days,
    backend_of,
    rowcount,
    scratch_table,
    serialize_writers,
    upsert,
)
from core.db.types import UtcDateTime
from core.models import Customer, CustomerStage, Event, StageTransition
from core.program import Program
from core.rules import join_rule_tables

_targets = Table(
    "stage_targets",
    MetaData(),
    Column("customer_id", BigInteger, primary_key=True),
    Column("stage", String(64)),
    prefixes=["TEMPORARY"],
)


@dataclass(frozen=True)
class StageRefresh:
    """What one refresh did."""

    customers: int
    moved: int
    """Customers whose stage changed, including those placed for the first time."""
    reactivated: int
    """Customers who left the dormant stage in this refresh."""
    unmatched: int
    """Customers no stage rule matched, placed in the fallback stage."""


async def refresh_stages(session: AsyncSession, program: Program, now: datetime) -> StageRefresh:
    """Assign every customer their stage as of ``now`` inside ``session``'s transaction."""
    await serialize_writers(session, "stages")
    await _prepare_newcomers(session, program, now)
    reactivated = await _mark_reactivations(session, program, now)

    tables = frozenset().union(*(stage.rule.tables for stage in program.stages))
    matched = case(*((stage.rule.condition(now), stage.name) for stage in program.stages))
    await scratch_table(session, _targets)
    await session.execute(
        insert(_targets).from_select(
            ["customer_id", "stage"],
            select(Customer.id, matched).select_from(join_rule_tables(Customer.__table__, tables)),
        )
    )
    unmatched = await session.execute(
        update(_targets).where(_targets.c.stage.is_(None)).values(stage=program.fallback_stage.name)
    )

    current = CustomerStage.__table__
    joined = _targets.outerjoin(current, current.c.customer_id == _targets.c.customer_id)
    is_move = or_(current.c.stage.is_(None), current.c.stage != _targets.c.stage)
    at = literal(now, UtcDateTime())
    moved = await session.execute(
        insert(StageTransition).from_select(
            ["customer_id", "from_stage", "to_stage", "at"],
            select(_targets.c.customer_id, current.c.stage, _targets.c.stage, at)
            .select_from(joined)
            .where(is_move),
        )
    )
    placements = upsert(backend_of(session), current).from_select(
        ["customer_id", "stage", "entered_at"],
        select(_targets.c.customer_id, _targets.c.stage, at).select_from(joined).where(is_move),
    )
    await session.execute(
        placements.on_conflict_do_update(
            index_elements=[current.c.customer_id],
            set_={"stage": placements.excluded.stage, "entered_at": placements.excluded.entered_at},
        )
    )
    customers = (await session.execute(select(func.count()).select_from(_targets))).scalar_one()
    return StageRefresh(customers, rowcount(moved), reactivated, rowcount(unmatched))


async def _prepare_newcomers(session: AsyncSession, program: Program, now: datetime) -> None:
    """Give customers never placed before a row, with ``reactivated_at`` from their history.

    The row's stage stays empty until the placement below, in the same
    transaction. Without this a stage such as "reactivated" would stay empty
    after importing history, since nobody had been seen leaving the dormant stage.
    """
    placed = select(CustomerStage.customer_id)
    newcomers = select(Customer.id).where(Customer.id.not_in(placed))
    # Every placed customer exists (the foreign key), so equal counts mean nobody is new:
    # the usual case, and two counts cost far less than reading everyone's history.
    counts = select(
        select(func.count()).select_from(Customer).scalar_subquery(),
        select(func.count()).select_from(CustomerStage).scalar_subquery(),
    )
    customers, placed_count = (await session.execute(counts)).one()
    if customers == placed_count:
        return
    comeback: ColumnElement[Any] = literal(None, UtcDateTime())
    source: FromClause = Customer.__table__
    if program.comeback_gap_days is not None:
        backend = backend_of(session)
        history = select(
            Event.customer_id,
            Event.occurred_at,
            func.lag(Event.occurred_at)
            .over(partition_by=Event.customer_id, order_by=Event.occurred_at)
            .label("previous"),
        ).where(Event.occurred_at <= now, Event.customer_id.in_(newcomers))
        steps = history.subquery("steps")
        gap = age_in_days(backend, steps.c.previous, now) - age_in_days(
            backend, steps.c.occurred_at, now
        )
        comebacks = (
            select(steps.c.customer_id, func.max(steps.c.occurred_at).label("at"))
            .where(gap >= program.comeback_gap_days)
            .group_by(steps.c.customer_id)
            .subquery("comebacks")
        )
        comeback = comebacks.c.at
        source = source.outerjoin(comebacks, comebacks.c.customer_id == Customer.id)
    await session.execute(
        insert(CustomerStage).from_select(
            ["customer_id", "entered_at", "reactivated_at"],
            select(Customer.id, literal(now, UtcDateTime()), comeback)
            .select_from(source)
            .where(Customer.id.not_in(placed)),
        )
    )


async def _mark_reactivations(session: AsyncSession, program: Program, now: datetime) -> int:
    """Stamp ``reactivated_at`` on customers whose dormant stage's rule no longer holds."""
    dormant = program.dormant_stage
    if dormant is None:
        return 0
    still_dormant = dormant.rule.condition(now)
    tables = dormant.rule.tables | {CustomerStage.__tablename__}
    leaving = (
        select(Customer.id)
        .select_from(join_rule_tables(Customer.__table__, tables))
        .where(
            CustomerStage.stage == dormant.name,
            func.coalesce(still_dormant, false()) == false(),
        )
    )
    result = await session.execute(
        update(CustomerStage)
        .where(CustomerStage.stage == dormant.name, CustomerStage.customer_id.in_(leaving))
        .values(reactivated_at=now)
    )
    return rowcount(result)


@dataclass(frozen=True)
class StageOverview:
    """A stage as ``cadence stages show`` and the console present it."""

    name: str
    objective: str
    customers: int
    entered_day: int
    entered_week: int
    left_day: int
    left_week: int


async def stage_overview(
    session: AsyncSession, program: Program, now: datetime
) -> list[StageOverview]:
    """Per stage in program order: its size, and the moves in and out over a day and a week."""
    by_stage = select(CustomerStage.stage, func.count()).group_by(CustomerStage.stage)
    sizes = dict((await session.execute(by_stage)).all())
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    moves: dict[tuple[str, str], tuple[int, int]] = {}
    directions = ((StageTransition.to_stage, "in"), (StageTransition.from_stage, "out"))
    for column, direction in directions:
        rows = await session.execute(
            select(
                column,
                func.count().filter(StageTransition.at > day),
                func.count(),
            )
            .where(
                StageTransition.at > week,
                StageTransition.at <= now,
                column.is_not(None),
                # A first placement is not a move out of anything.
                StageTransition.from_stage.is_not(None),
            )
            .group_by(column)
        )
        for stage, last_day, last_week in rows:
            moves[(stage or "", direction)] = (last_day, last_week)
    return [
        StageOverview(
            name=stage.name,
            objective=stage.spec.objective,
            customers=sizes.get(stage.name, 0),
            entered_day=moves.get((stage.name, "in"), (0, 0))[0],
            entered_week=moves.get((stage.name, "in"), (0, 0))[1],
            left_day=moves.get((stage.name, "out"), (0, 0))[0],
            left_week=moves.get((stage.name, "out"), (0, 0))[1],
        )
        for stage in program.stages
    ]
