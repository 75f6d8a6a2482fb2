"""Segments: a baseline first, then every entry and exit recorded, sizes kept over time."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from config import DEFAULT_CONFIG_DIR
from core.db import Store
from core.lifecycle import refresh_stages
from core.models import Customer, Segment, SegmentChange, SegmentMember, SegmentSize
from core.program import Program, load_program
from core.segments import (
    SegmentRefresh,
    _refresh_segment,
    _take_snapshot,
    refresh_segments,
    segment_detail,
    segment_summaries,
    sync_segments,
)
from tests.conftest import NOW
from tests.helpers import add_customer, update_rollup

DAY = timedelta(days=1)

SEGMENTS = """
[[segment]]
name = "spenders"
description = "Spent 100 or more"
rule = "revenue_total >= 100"
tags = ["value"]

[[segment]]
name = "active-spenders"
description = "Active and spent 100 or more"
stage = "active"
rule = "revenue_total >= 100"
"""


def _program(folder: Path, segments: str = SEGMENTS) -> Program:
    target = folder / "program"
    shutil.copytree(DEFAULT_CONFIG_DIR / "program", target, dirs_exist_ok=True)
    (target / "segments.toml").write_text(segments, encoding="utf-8")
    # Campaigns and journeys target segments these tests leave out.
    (target / "campaigns.toml").unlink()
    (target / "journeys.toml").unlink()
    return load_program(target)


async def _members(store: Store, segment: str) -> set[str]:
    async with store.reading() as session:
        rows = await session.execute(
            select(Customer.external_id)
            .join(SegmentMember, SegmentMember.customer_id == Customer.id)
            .join(Segment, Segment.id == SegmentMember.segment_id)
            .where(Segment.name == segment)
        )
        return set(rows.scalars())


async def _changes(store: Store) -> list[tuple[str, str, bool]]:
    """Every recorded change, sorted: the order within one refresh is not part of the contract."""
    async with store.reading() as session:
        rows = await session.execute(
            select(Segment.name, Customer.external_id, SegmentChange.entered)
            .join(Segment, Segment.id == SegmentChange.segment_id)
            .join(Customer, Customer.id == SegmentChange.customer_id)
        )
        return sorted((name, key, bool(entered)) for name, key, entered in rows)


async def _people(store: Store) -> dict[str, int]:
    active: dict[str, Any] = {"first_purchase_at": NOW - 200 * DAY, "last_event_at": NOW - DAY}
    return {
        "rich": await add_customer(store, "rich", NOW - 300 * DAY, revenue_total=500, **active),
        "poor": await add_customer(store, "poor", NOW - 300 * DAY, revenue_total=20, **active),
        "gone": await add_customer(
            store,
            "gone",
            NOW - 300 * DAY,
            revenue_total=900,
            first_purchase_at=NOW - 250 * DAY,
            last_event_at=NOW - 100 * DAY,
        ),
    }


async def test_first_refresh_is_a_baseline(store: Store, tmp_path: Path) -> None:
    program = _program(tmp_path)
    await _people(store)
    async with store.transaction() as session:
        await refresh_stages(session, program, NOW)
    results = {r.name: r for r in await refresh_segments(store, program, NOW)}

    assert results["spenders"].baseline and results["spenders"].size == 2
    assert await _members(store, "spenders") == {"rich", "gone"}
    assert await _members(store, "active-spenders") == {"rich"}
    assert await _changes(store) == []


async def test_later_refreshes_record_who_entered_and_left(store: Store, tmp_path: Path) -> None:
    program = _program(tmp_path)
    ids = await _people(store)
    await refresh_segments(store, program, NOW)
    await update_rollup(store, ids["poor"], revenue_total=150)
    await update_rollup(store, ids["rich"], revenue_total=50)

    results = {r.name: r for r in await refresh_segments(store, program, NOW + DAY)}
    assert (results["spenders"].entered, results["spenders"].left) == (1, 1)
    assert not results["spenders"].baseline
    assert await _members(store, "spenders") == {"poor", "gone"}
    assert await _changes(store) == [("spenders", "poor", True), ("spenders", "rich", False)]

    # Nothing changed: nothing recorded, the size history grows by one point.
    again = {r.name: r for r in await refresh_segments(store, program, NOW + 2 * DAY)}
    assert (again["spenders"].entered, again["spenders"].left) == (0, 0)
    async with store.reading() as session:
        detail = await segment_detail(session, program.segment("spenders"))
    assert [(p.size, p.entered, p.left) for p in detail.history] == [
        (2, 0, 0),
        (2, 1, 1),
        (2, 2, 0),
    ]


async def test_segment_within_a_stage_follows_the_stage(store: Store, tmp_path: Path) -> None:
    program = _program(tmp_path)
    ids = await _people(store)
    async with store.transaction() as session:
        await refresh_stages(session, program, NOW)
    await refresh_segments(store, program, NOW)
    assert await _members(store, "active-spenders") == {"rich"}

    # "rich" lapses: 70 days without activity makes them inactive.
    later = NOW + 70 * DAY
    async with store.transaction() as session:
        await refresh_stages(session, program, later)
    await refresh_segments(store, program, later, names=["active-spenders"])
    assert await _members(store, "active-spenders") == set()
    assert await _changes(store) == [("active-spenders", "rich", False)]
    assert ids  # the people exist


async def test_removed_segments_are_archived_and_emptied(store: Store, tmp_path: Path) -> None:
    await _people(store)
    await refresh_segments(store, _program(tmp_path), NOW)
    smaller = SEGMENTS.split("[[segment]]")[1]
    await refresh_segments(store, _program(tmp_path, "[[segment]]" + smaller), NOW + DAY)

    async with store.reading() as session:
        archived = (
            await session.execute(select(Segment.archived).where(Segment.name == "active-spenders"))
        ).scalar_one()
        summaries = await segment_summaries(session, _program(tmp_path, "[[segment]]" + smaller))
        sizes = (await session.execute(select(SegmentSize.segment_id))).scalars().all()
    assert archived
    assert await _members(store, "active-spenders") == set()
    assert [s.name for s in summaries] == ["spenders"]
    assert len(sizes) == 3  # two refreshes of "spenders", one of the other before removal


async def _pass_interrupted_by(
    store: Store, program: Program, now: datetime, meanwhile: Callable[[], Awaitable[None]]
) -> list[SegmentRefresh]:
    """A refresh pass of every segment that takes its snapshot, lets ``meanwhile`` run (as
    another process would), then writes."""
    async with store.pinned() as connection:
        async with connection.transaction() as session:
            segment_ids = await sync_segments(session, program, now)
        async with connection.reading() as session:
            refresh_pass, planned = await _take_snapshot(
                session, list(program.segments), segment_ids, now
            )
        await meanwhile()
        async with connection.transaction() as session:
            results = [await _refresh_segment(session, refresh_pass, p) for p in planned]
        async with connection.reading() as session:
            await refresh_pass.drop(session)
    return results


async def _placed_then_lapsed(store: Store, program: Program) -> datetime:
    """Baseline everything now; then, 70 days on, "poor" is an active spender and "rich"
    has lapsed into "inactive"; returns that later moment, stages refreshed."""
    ids = await _people(store)
    async with store.transaction() as session:
        await refresh_stages(session, program, NOW)
    await refresh_segments(store, program, NOW)
    later = NOW + 70 * DAY
    await update_rollup(store, ids["poor"], revenue_total=150, last_event_at=later - DAY)
    async with store.transaction() as session:
        await refresh_stages(session, program, later)
    return later


EXPECTED_AFTER_LAPSE = [
    ("active-spenders", "poor", True),
    ("active-spenders", "rich", False),
    ("spenders", "poor", True),
]


async def test_a_refresh_between_snapshot_and_write_is_not_counted_twice(
    store: Store, tmp_path: Path
) -> None:
    """A pass reads the members when it takes its snapshot; if another refresh changes them
    before the pass writes (a CLI refresh beside the scheduler), the pass reads them again."""
    program = _program(tmp_path)
    later = await _placed_then_lapsed(store, program)

    async def refresh_meanwhile() -> None:
        await refresh_segments(store, program, later)

    late = await _pass_interrupted_by(store, program, later, refresh_meanwhile)
    assert [(r.name, r.entered, r.left) for r in late] == [
        ("spenders", 0, 0),
        ("active-spenders", 0, 0),
    ]
    assert await _members(store, "spenders") == {"rich", "poor", "gone"}
    assert await _members(store, "active-spenders") == {"poor"}
    assert await _changes(store) == EXPECTED_AFTER_LAPSE


async def test_a_pass_that_reads_members_again_still_finds_who_moved_stage(
    store: Store, tmp_path: Path
) -> None:
    """After reading the members again, a pass finds members who moved to another stage by a
    scan instead of from the strays it found at first; the outcome is the same."""
    program = _program(tmp_path)
    later = await _placed_then_lapsed(store, program)

    async def bump_revisions() -> None:  # as if another refresh had run and changed nothing
        async with store.transaction() as session:
            await session.execute(update(Segment).values(revision=Segment.revision + 1))

    late = await _pass_interrupted_by(store, program, later, bump_revisions)
    assert [(r.name, r.entered, r.left) for r in late] == [
        ("spenders", 1, 0),
        ("active-spenders", 1, 1),
    ]
    assert await _members(store, "active-spenders") == {"poor"}
    assert await _changes(store) == EXPECTED_AFTER_LAPSE
