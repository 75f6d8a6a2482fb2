"""``cadence bench segments``: stage and segment refresh at scale, against a floor.

The data (customers, a year of events, rollups) is built once per size and
cached under ``.cadence-bench/``; each run works on a fresh copy. A run
refreshes the scores and fits CLV (timed apart as ``scores_seconds``),
materialises the stages and every segment's baseline once
(``initial_seconds``), moves the clock on a day and then times what the
scheduler does every time: a stage refresh plus a full refresh of every
segment with entries and exits recorded (``seconds``). The floor, measured
in the same run on the same data, is the bare evaluation of each of the same
stage and segment rules once as ``SELECT count(*) ... WHERE rule`` over a rule
snapshot: the cheapest evaluation there is. Taking that snapshot is left out
of the floor but counted in ``seconds``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from core.bench_data import (
    BENCH_NOW,
    bench_program,
    cached_database,
    refresh_everything,
    working_store,
)
from core.db import Store
from core.intel.refresh import refresh_intel
from core.models import Segment
from core.program import Program
from core.rules.snapshot import RuleSnapshot
from core.segments import segment_condition
from core.settings import Settings

TARGET_SECONDS = 60.0
TARGET_RATIO = 3.0


async def benchmark_segments(
    settings: Settings, program: Program, *, customers: int, segments: int
) -> dict[str, Any]:
    """Run the benchmark; returns the fields of its JSON line."""
    cached = await cached_database(settings, customers)
    chosen = bench_program(program, segments)
    async with working_store(settings, cached) as store:
        started = time.perf_counter()
        intel = await refresh_intel(store, chosen, BENCH_NOW, zone=settings.zone)
        scores_seconds = time.perf_counter() - started
        initial_seconds, _ = await refresh_everything(store, chosen, BENCH_NOW)
        tomorrow = BENCH_NOW + timedelta(days=1)
        seconds, stages_seconds = await refresh_everything(store, chosen, tomorrow)
        floor_seconds = await _floor(store, chosen, tomorrow)
        async with store.reading() as session:
            members = (await session.execute(select(func.sum(Segment.size)))).scalar_one()
    ratio = seconds / floor_seconds
    return {
        "bench": "segments",
        "backend": "sqlite",
        "customers": customers,
        "segments": len(chosen.segments),
        "stages": len(chosen.stages),
        "seconds": round(seconds, 3),
        "stages_seconds": round(stages_seconds, 3),
        "scores_seconds": round(scores_seconds, 3),
        "initial_seconds": round(initial_seconds, 3),
        "floor_seconds": round(floor_seconds, 6),  # a few milliseconds on small data
        "ratio": round(ratio, 3),
        "members": int(members or 0),
        "clv_fitted": intel.fit is not None,
        "target_seconds": TARGET_SECONDS,
        "target_ratio": TARGET_RATIO,
        "meets_target": seconds <= TARGET_SECONDS and ratio <= TARGET_RATIO,
    }


async def _floor(store: Store, program: Program, now: datetime) -> float:
    """Seconds to count the customers of every stage and segment rule once.

    Each rule is counted the cheapest way Cadence knows, over a rule snapshot
    (one row per customer, no joins, no JSON) taken beforehand and not timed.
    """
    rules = [stage.rule for stage in program.stages] + [s.rule for s in program.segments]
    async with store.pinned() as connection, connection.reading() as session:
        snapshot = RuleSnapshot(rules, now, fields=["stage"])
        await snapshot.build(session)
        conditions = [snapshot.condition(stage.rule) for stage in program.stages]
        conditions += [segment_condition(segment, snapshot) for segment in program.segments]
        started = time.perf_counter()
        for condition in conditions:
            await session.execute(select(func.count()).select_from(snapshot.table).where(condition))
        seconds = time.perf_counter() - started
        await snapshot.drop(session)
    return seconds
