"""Segments: materialised membership, refreshed set-based, with every entry and exit kept.

A refresh pass first takes a :class:`~core.rules.snapshot.RuleSnapshot` of
what its segments' rules read, one row per customer, with a bit per segment
saying whether the customer is a member now. Each segment then costs one
scan of the snapshot: a customer whose rule answer differs from their bit
entered or left. Both are recorded in ``segment_changes`` (what "entered
segment" triggers react to), applied to ``segment_members``, and the size
is appended to ``segment_sizes``. A segment's first refresh is its
baseline: its members are stored without change records, so a new segment
does not look as if everyone just entered. A segment is refreshed whole in
one transaction, which goes on to the next segments for about a second; an
interrupted pass keeps the segments already committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Table,
    and_,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Store
from core.db.dialect import (
    backend_of,
    drop_scratch_table,
    rowcount,
    scratch_definition,
    scratch_table,
    serialize_writers,
    upsert,
)
from core.db.types import BigId, UtcDateTime
from core.models import (
    Segment,
    SegmentChange,
    SegmentMember,
    SegmentSize,
)
from core.program import Program, SegmentDefinition
from core.rules.snapshot import RuleSnapshot

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


_WORD_BITS = 63
"""Segments per membership word: the bits of a signed 64-bit integer but its sign."""

_BATCH_SECONDS = 1.0
"""A transaction takes consecutive segments for about this long. Commits are then few
(each writes every page its segments touched, once: a page of the members' customer
index is touched by many segments) and other writers wait about this long at most."""


@dataclass(frozen=True)
class _Planned:
    """A segment in a refresh pass, and the revision its members had when the snapshot
    read them. Its membership bit sits in word ``(id - 1) // 63``, at ``(id - 1) % 63``."""

    segment_id: int
    definition: SegmentDefinition
    revision: int

    @property
    def word(self) -> int:
        return (self.segment_id - 1) // _WORD_BITS

    @property
    def mask(self) -> int:
        return 1 << ((self.segment_id - 1) % _WORD_BITS)

    @property
    def word_column(self) -> str:
        return _word_column(self.word)


def _word_column(number: int) -> str:
    return f"member_word_{number}"


async def refresh_segments(
    store: Store,
    program: Program,
    now: datetime,
    *,
    names: Sequence[str] | None = None,
    on_refreshed: Callable[[SegmentRefresh], None] | None = None,
) -> list[SegmentRefresh]:
    """Sync the definitions, then refresh ``names`` (default: all), in program order.

    One :class:`~core.rules.snapshot.RuleSnapshot` serves the whole pass: it
    holds what the segments' rules read and, per customer, one bit per
    segment saying whether they were a member, so each segment costs one
    scan of the snapshot that finds exactly who entered and who left.
    """
    async with store.transaction() as session:
        ids = await sync_segments(session, program, now)
    chosen = [program.segment(name) for name in names] if names else list(program.segments)
    if not chosen:
        return []
    results = []
    async with store.pinned() as connection:
        async with connection.reading() as session:
            refresh_pass, planned = await _take_snapshot(session, chosen, ids, now)
        try:
            waiting = list(reversed(planned))
            while waiting:
                batch: list[SegmentRefresh] = []
                async with connection.transaction() as session:
                    started = time.monotonic()
                    while waiting and (not batch or time.monotonic() - started < _BATCH_SECONDS):
                        batch.append(await _refresh_segment(session, refresh_pass, waiting.pop()))
                results += batch
                if on_refreshed is not None:
                    for result in batch:
                        on_refreshed(result)
        finally:
            async with connection.reading() as session:
                await refresh_pass.drop(session)
    return results


@dataclass(frozen=True)
class _Pass:
    """What a refresh pass reads: the snapshot and, when it is grouped by stage, its strays.

    A stray is a customer whose membership bits include a segment of another
    stage than theirs now: they moved stage and left that segment. Finding them
    once per pass spares every segment of a stage a scan of the other stages.
    """

    snapshot: RuleSnapshot
    strays: Table | None

    async def drop(self, session: AsyncSession) -> None:
        if self.strays is not None:
            await drop_scratch_table(session, self.strays)
        await self.snapshot.drop(session)


async def _take_snapshot(
    session: AsyncSession, chosen: list[SegmentDefinition], ids: dict[str, int], now: datetime
) -> tuple[_Pass, list[_Planned]]:
    """Snapshot what the chosen segments' rules read, with each customer's membership bits."""
    chosen_ids = [ids[definition.name] for definition in chosen]
    revisions = {
        segment_id: revision
        for segment_id, revision in await session.execute(
            select(Segment.id, Segment.revision).where(Segment.id.in_(chosen_ids))
        )
    }
    planned = [
        _Planned(ids[definition.name], definition, revisions[ids[definition.name]])
        for definition in chosen
    ]
    words = sorted({p.word for p in planned})
    position = _members.c.segment_id - 1
    bit = literal(1, BigInteger()).op("<<")(position % _WORD_BITS)
    membership = (
        select(
            _members.c.customer_id,
            *(
                cast(
                    func.sum(case((position // _WORD_BITS == word, bit), else_=0)), BigInteger
                ).label(_word_column(word))
                for word in words
            ),
        )
        .group_by(_members.c.customer_id)
        .subquery("membership")
    )
    needs_stage = any(d.spec.stage is not None for d in chosen)
    snapshot = RuleSnapshot(
        (d.rule for d in chosen),
        now,
        carried=membership,
        grouped_by="stage" if needs_stage else None,
    )
    await snapshot.build(session)
    strays = await _find_strays(session, snapshot, planned, words) if needs_stage else None
    return _Pass(snapshot, strays), planned


async def _find_strays(
    session: AsyncSession, snapshot: RuleSnapshot, planned: list[_Planned], words: list[int]
) -> Table:
    """Copy each customer's bits of segments of other stages than theirs, where there are any."""
    strays = scratch_definition(
        "segment_strays",
        [
            Column("customer_id", BigId, primary_key=True),
            *(Column(_word_column(word), BigInteger) for word in words),
        ],
    )
    await scratch_table(session, strays, until="dropped")
    scoped = [(p, p.definition.spec.stage) for p in planned if p.definition.spec.stage]
    stages = sorted({stage for _, stage in scoped})
    stage = snapshot.field("stage")

    def elsewhere(word: int) -> ColumnElement[int]:
        """The word's bits of segments of another stage than the customer's."""
        masks = {
            value: sum(p.mask for p, own in scoped if p.word == word and own != value)
            for value in (*stages, None)
        }
        other = case({value: masks[value] for value in stages}, value=stage, else_=masks[None])
        return snapshot.field(_word_column(word)).op("&")(other)

    strayed = [elsewhere(word) for word in words]
    await session.execute(
        insert(strays).from_select(
            [column.name for column in strays.c],
            select(snapshot.field("customer_id"), *strayed).where(
                or_(*(bits != 0 for bits in strayed))
            ),
        )
    )
    return strays


async def _refresh_segment(
    session: AsyncSession, refresh_pass: _Pass, planned: _Planned
) -> SegmentRefresh:
    """Bring one segment's membership up to the snapshot inside ``session``'s transaction."""
    snapshot = refresh_pass.snapshot
    segment_id = planned.segment_id
    await serialize_writers(session, f"segment:{segment_id}")
    segment = await session.get_one(Segment, segment_id)
    baseline = segment.refreshed_at is None
    at = literal(snapshot.now, UtcDateTime())
    qualifies = segment_condition(planned.definition, snapshot)
    if baseline:
        added = await session.execute(
            insert(SegmentMember).from_select(
                ["segment_id", "customer_id", "entered_at"],
                select(literal(segment_id), snapshot.field("customer_id"), at).where(qualifies),
            )
        )
        entered, left = rowcount(added), 0
    else:
        reread = segment.revision != planned.revision
        if reread:
            await _reread_members(session, snapshot, planned)
        # Strays were found from the members as first read.
        strays = None if reread else refresh_pass.strays
        entered, left = await _record_changes(session, snapshot, strays, planned, qualifies, at)
    size = (
        await session.execute(select(func.count()).where(SegmentMember.segment_id == segment_id))
    ).scalar_one()
    segment.size, segment.refreshed_at = size, snapshot.now
    segment.revision += 1
    history = upsert(backend_of(session), SegmentSize.__table__).values(
        segment_id=segment_id, at=snapshot.now, size=size, entered=entered, left=left
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
    return SegmentRefresh(planned.definition.name, size, entered, left, baseline)


async def _reread_members(session: AsyncSession, snapshot: RuleSnapshot, planned: _Planned) -> None:
    """Another refresh changed the segment after the snapshot read its members: read them again."""
    word = snapshot.field(planned.word_column)
    is_member = (
        select(_members.c.customer_id)
        .where(
            _members.c.segment_id == planned.segment_id,
            _members.c.customer_id == snapshot.field("customer_id"),
        )
        .exists()
    )
    await session.execute(
        update(snapshot.table).values(
            {word: word - word.op("&")(planned.mask) + case((is_member, planned.mask), else_=0)}
        )
    )


async def _record_changes(
    session: AsyncSession,
    snapshot: RuleSnapshot,
    strays: Table | None,
    planned: _Planned,
    qualifies: ColumnElement[bool],
    at: ColumnElement[Any],
) -> tuple[int, int]:
    """Record who entered and who left since the last refresh, then apply it to the members.

    One scan of the snapshot (of its rows of the segment's stage, when it is
    grouped by stage): a customer changed exactly when the rule's answer
    differs from their membership bit. Members outside those rows moved to
    another stage and left: ``strays`` has them, or a scan finds them.
    """
    segment_id = planned.segment_id
    before = (
        await session.execute(select(func.coalesce(func.max(SegmentChange.id), 0)))
    ).scalar_one()
    was_member = snapshot.field(planned.word_column).op("&")(planned.mask) != 0
    # Written so that the rule is a condition, not a value: a condition stops at its
    # first false term, a value is worked out whole (SQLite's AND does not short-circuit
    # in a value), and most customers are non-members for whom it is false early.
    changed = or_(and_(not_(was_member), qualifies), and_(was_member, qualifies.is_not(true())))
    record = insert(SegmentChange)
    columns = ["segment_id", "customer_id", "entered", "at"]
    change = select(literal(segment_id), snapshot.field("customer_id"), not_(was_member), at)
    stage = planned.definition.spec.stage
    if stage is None or not snapshot.grouped:
        changes = [change.where(changed)]
    else:
        # The stage's rows, where the rule decides; then the members now in another
        # stage, who left whatever the rule says.
        in_stage = and_(snapshot.in_group(stage), snapshot.field("stage") == stage)
        if strays is None:
            moved = change.where(was_member, snapshot.field("stage").is_distinct_from(stage))
        else:
            moved = select(literal(segment_id), strays.c.customer_id, false(), at).where(
                strays.c[planned.word_column].op("&")(planned.mask) != 0
            )
        changes = [change.where(in_stage, changed), moved]
    recorded = 0
    for changed_rows in changes:
        recorded += rowcount(await session.execute(record.from_select(columns, changed_rows)))
    if not recorded:
        return 0, 0  # most segments of a day's refresh: nothing to apply to the members
    # The time narrows the (segment, at) index down to this refresh's changes.
    new_changes = and_(
        _changes.c.segment_id == segment_id, _changes.c.at == at, _changes.c.id > before
    )
    left = await session.execute(
        delete(SegmentMember)
        .where(
            SegmentMember.segment_id == segment_id,
            SegmentMember.customer_id.in_(
                select(_changes.c.customer_id).where(new_changes, _changes.c.entered == false())
            ),
        )
        .execution_options(synchronize_session=False)  # no members are loaded as objects
    )
    entered = await session.execute(
        insert(SegmentMember).from_select(
            ["segment_id", "customer_id", "entered_at"],
            select(_changes.c.segment_id, _changes.c.customer_id, _changes.c.at).where(
                new_changes, _changes.c.entered == true()
            ),
        )
    )
    return rowcount(entered), rowcount(left)


def segment_condition(definition: SegmentDefinition, snapshot: RuleSnapshot) -> ColumnElement[bool]:
    """The segment's condition over ``snapshot``: its rule, within its stage if it has one
    (and then, in a snapshot grouped by stage, only that stage's rows are read)."""
    condition = snapshot.condition(definition.rule)
    stage = definition.spec.stage
    if stage is None:
        return condition
    return and_(snapshot.in_group(stage), snapshot.field("stage") == stage, condition)


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
