"""Segments: materialised membership, refreshed set-based, with every entry and exit kept.

A refresh evaluates the segment's rule once over all customers (to find who
entered) and once over the current members (to find who left), records both
in ``segment_changes`` (what "entered segment" triggers react to), applies
them to ``segment_members`` and appends the size to ``segment_sizes``. A
segment's first refresh is its baseline: its members are stored without
change records, so a new segment does not look as if everyone just entered.
Each segment is refreshed in its own transaction; an interrupted refresh of
many segments keeps those already done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    false,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Store
from core.db.dialect import backend_of, rowcount, serialize_writers, upsert
from core.db.types import UtcDateTime
from core.models import (
    Customer,
    CustomerStage,
    Segment,
    SegmentChange,
    SegmentMember,
    SegmentSize,
)
from core.program import Program, SegmentDefinition
from core.rules import join_rule_tables

_members = SegmentMember.__table__
_changes = SegmentChange.__table__


@dataclass(frozen=True)
class SegmentRefresh:
    """What refreshing one segment did."""

    name: str
    size: int
    entered: int
    left: int
    baseline: bool
    """True for the segment's first refresh, which records no entries or exits."""


async def sync_segments(session: AsyncSession, program: Program, now: datetime) -> dict[str, int]:
    """Make the ``segments`` table match the program; returns the ids of the program's segments.

    New segments are added, changed definitions updated (the next refresh
    diffs membership against the new rule), and segments no longer in the
    program archived with their members removed.
    """
    await serialize_writers(session, "segments")
    stored = {
        segment.name: segment for segment in (await session.execute(select(Segment))).scalars()
    }
    for definition in program.segments:
        spec = definition.spec
        values = {
            "description": spec.description,
            "stage": spec.stage,
            "rule": spec.rule,
            "tags": list(spec.tags),
            "archived": False,
        }
        segment = stored.get(spec.name)
        if segment is None:
            segment = Segment(name=spec.name, created_at=now, updated_at=now, **values)
            session.add(segment)
        elif any(getattr(segment, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(segment, key, value)
            segment.updated_at = now
    await session.flush()
    names = {definition.name for definition in program.segments}
    removed = [
        segment.id for name, segment in stored.items() if name not in names and not segment.archived
    ]
    if removed:
        await session.execute(delete(SegmentMember).where(SegmentMember.segment_id.in_(removed)))
        await session.execute(
            update(Segment)
            .where(Segment.id.in_(removed))
            .values(archived=True, size=0, updated_at=now)
        )
    stored_ids = select(Segment.name, Segment.id).where(Segment.name.in_(names))
    return {name: segment_id for name, segment_id in await session.execute(stored_ids)}


async def refresh_segment(
    session: AsyncSession, segment_id: int, definition: SegmentDefinition, now: datetime
) -> SegmentRefresh:
    """Bring one segment's membership up to ``now`` inside ``session``'s transaction."""
    await serialize_writers(session, f"segment:{segment_id}")
    segment = await session.get_one(Segment, segment_id)
    baseline = segment.refreshed_at is None
    at = literal(now, UtcDateTime())
    qualifies, tables = segment_condition(definition, now)
    if baseline:
        added = await session.execute(
            insert(SegmentMember).from_select(
                ["segment_id", "customer_id", "entered_at"],
                select(literal(segment_id), Customer.id, at)
                .select_from(join_rule_tables(Customer.__table__, tables))
                .where(qualifies),
            )
        )
        entered, left = rowcount(added), 0
    else:
        entered, left = await _record_changes(session, segment_id, qualifies, tables, at)
    size = (
        await session.execute(select(func.count()).where(SegmentMember.segment_id == segment_id))
    ).scalar_one()
    segment.size, segment.refreshed_at = size, now
    history = upsert(backend_of(session), SegmentSize.__table__).values(
        segment_id=segment_id, at=now, size=size, entered=entered, left=left
    )
    await session.execute(
        history.on_conflict_do_update(
            index_elements=["segment_id", "at"],
            set_={
                "size": history.excluded.size,
                "entered": SegmentSize.entered + history.excluded.entered,
                "left": SegmentSize.left + history.excluded.left,
            },
        )
    )
    return SegmentRefresh(definition.name, size, entered, left, baseline)


async def _record_changes(
    session: AsyncSession,
    segment_id: int,
    qualifies: ColumnElement[bool],
    tables: frozenset[str],
    at: ColumnElement[Any],
) -> tuple[int, int]:
    """Record who entered and who left since the last refresh, then apply it to the members."""
    before = (
        await session.execute(select(func.coalesce(func.max(SegmentChange.id), 0)))
    ).scalar_one()
    is_member = (
        select(_members.c.customer_id)
        .where(_members.c.segment_id == segment_id, _members.c.customer_id == Customer.id)
        .exists()
    )
    entered = await session.execute(
        insert(SegmentChange).from_select(
            ["segment_id", "customer_id", "entered", "at"],
            select(literal(segment_id), Customer.id, true(), at)
            .select_from(join_rule_tables(Customer.__table__, tables))
            .where(qualifies, ~is_member),
        )
    )
    members = _members.join(Customer.__table__, Customer.id == _members.c.customer_id)
    left = await session.execute(
        insert(SegmentChange).from_select(
            ["segment_id", "customer_id", "entered", "at"],
            select(literal(segment_id), _members.c.customer_id, false(), at)
            .select_from(join_rule_tables(members, tables))
            .where(
                _members.c.segment_id == segment_id, func.coalesce(qualifies, false()) == false()
            ),
        )
    )
    new_changes = and_(_changes.c.segment_id == segment_id, _changes.c.id > before)
    await session.execute(
        delete(SegmentMember).where(
            SegmentMember.segment_id == segment_id,
            SegmentMember.customer_id.in_(
                select(_changes.c.customer_id).where(new_changes, _changes.c.entered == false())
            ),
        )
    )
    await session.execute(
        insert(SegmentMember).from_select(
            ["segment_id", "customer_id", "entered_at"],
            select(_changes.c.segment_id, _changes.c.customer_id, _changes.c.at).where(
                new_changes, _changes.c.entered == true()
            ),
        )
    )
    return rowcount(entered), rowcount(left)


def segment_condition(
    definition: SegmentDefinition, now: datetime
) -> tuple[ColumnElement[bool], frozenset[str]]:
    """The segment's condition (its rule, within its stage if any) and the tables it reads."""
    condition = definition.rule.condition(now)
    tables = frozenset(definition.rule.tables)
    if definition.spec.stage is not None:
        condition = and_(CustomerStage.stage == definition.spec.stage, condition)
        tables = tables | {CustomerStage.__tablename__}
    return condition, tables


async def refresh_segments(
    store: Store,
    program: Program,
    now: datetime,
    *,
    names: Sequence[str] | None = None,
    on_refreshed: Callable[[SegmentRefresh], None] | None = None,
) -> list[SegmentRefresh]:
    """Sync the definitions, then refresh ``names`` (default: all), one transaction each."""
    async with store.transaction() as session:
        ids = await sync_segments(session, program, now)
    chosen = [program.segment(name) for name in names] if names else program.segments
    results = []
    for definition in chosen:
        async with store.transaction() as session:
            result = await refresh_segment(session, ids[definition.name], definition, now)
        results.append(result)
        if on_refreshed is not None:
            on_refreshed(result)
    return results


@dataclass(frozen=True)
class SegmentSummary:
    """A segment as lists show it: definition and the last refresh's outcome."""

    name: str
    description: str
    stage: str | None
    tags: list[str]
    size: int
    refreshed_at: datetime | None
    entered: int
    left: int


@dataclass(frozen=True)
class SizePoint:
    at: datetime
    size: int
    entered: int
    left: int


@dataclass(frozen=True)
class SegmentDetail:
    definition: SegmentDefinition
    history: list[SizePoint]


async def segment_summaries(session: AsyncSession, program: Program) -> list[SegmentSummary]:
    """The program's segments in program order, with what their last refresh found."""
    stored = {
        segment.name: segment for segment in (await session.execute(select(Segment))).scalars()
    }
    latest = (
        select(SegmentSize.segment_id, func.max(SegmentSize.at).label("at"))
        .group_by(SegmentSize.segment_id)
        .subquery()
    )
    last = {
        segment_id: (entered, left)
        for segment_id, entered, left in (
            await session.execute(
                select(SegmentSize.segment_id, SegmentSize.entered, SegmentSize.left).join(
                    latest,
                    and_(
                        latest.c.segment_id == SegmentSize.segment_id,
                        latest.c.at == SegmentSize.at,
                    ),
                )
            )
        )
    }
    summaries = []
    for definition in program.segments:
        spec, segment = definition.spec, stored.get(definition.name)
        refreshed = segment.refreshed_at if segment else None
        entered, left = last.get(segment.id, (0, 0)) if segment else (0, 0)
        summaries.append(
            SegmentSummary(
                name=spec.name,
                description=spec.description,
                stage=spec.stage,
                tags=list(spec.tags),
                size=segment.size if segment else 0,
                refreshed_at=refreshed,
                entered=entered,
                left=left,
            )
        )
    return summaries


async def segment_detail(
    session: AsyncSession, definition: SegmentDefinition, history: int = 30
) -> SegmentDetail:
    """A segment's definition and its latest ``history`` sizes, newest first."""
    rows = await session.execute(
        select(SegmentSize.at, SegmentSize.size, SegmentSize.entered, SegmentSize.left)
        .join(Segment, Segment.id == SegmentSize.segment_id)
        .where(Segment.name == definition.name)
        .order_by(SegmentSize.at.desc())
        .limit(history)
    )
    return SegmentDetail(definition, [SizePoint(*row) for row in rows])
