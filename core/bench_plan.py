"""``cadence bench plan``: one planning tick over many due campaigns, against a floor.

Setup, not timed: the benchmark data (:mod:`core.bench_data`) with the
program's stages and ``segments`` segments (its own, then generated ones)
materialised once at ``BENCH_NOW`` (scores, stages, segment membership) and
cached under ``.cadence-bench/``; each run works on a fresh copy. On it the
run stores ``campaigns`` active cycle campaigns, all on the cron schedule
``0 10 * * *`` from ``BENCH_NOW``, over segments spread along the program:
email marketing with a 10% control group and a 21-day cooldown at a handful
of priorities (so ties exist), some narrowed to a stage or by an extra rule,
a few transactional ones.

Timed (``seconds``): :func:`core.planner.runs.plan_due_runs` at 10:05 the next
day, the tick that finds every campaign's 10:00 slot due and plans them all
together through the contact policy into the outbox and contact history.

The floor (``floor_seconds``), measured in the same run on the same data: for
each campaign, one plain ``SELECT count(*)`` over the catalogue tables
(``customers`` LEFT JOIN the per-customer tables the rules read) of its
whole target, evaluated from the rules rather than read from the
materialised membership: the segment's rule, ``stage == <the segment's
stage>`` when it has one, ``stage == <the campaign's stage>`` when the
campaign names one, and the campaign's extra rule when it has one, all
ANDed in one ``WHERE`` (as :meth:`core.rules.Rule.select_customers` builds
it). ``floor_seconds`` is the sum of those counts' times; ``ratio`` is
``seconds / floor_seconds``.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from core import clock
from core.bench_data import (
    BENCH_NOW,
    bench_program,
    derived_database,
    refresh_everything,
    working_store,
)
from core.campaigns import store_campaign
from core.db import Store
from core.intel.refresh import refresh_intel
from core.planner.runs import PlannedRun, plan_due_runs
from core.policy import Outcome
from core.program import Program, SegmentDefinition
from core.program.model import CampaignSpec
from core.rules import Rule, join_rule_tables, parse_rule
from core.rules.fields import CUSTOMERS
from core.settings import Settings

TARGET_SECONDS = 30.0
TARGET_RATIO = 4.0
SCHEDULE = "0 10 * * *"
TICK_AT = (BENCH_NOW + timedelta(days=1)).replace(hour=10, minute=5)
"""When the tick runs: five minutes after the campaigns' slot on the day after the data."""
_PRIORITIES = (40, 50, 50, 60, 70)


async def benchmark_plan(
    settings: Settings, program: Program, *, customers: int, campaigns: int, segments: int
) -> dict[str, Any]:
    """Run the benchmark; returns the fields of its JSON line."""
    chosen = bench_program(program, segments)
    specs = bench_campaigns(chosen, campaigns)
    cached = await _materialised_database(settings, chosen, customers)
    async with working_store(settings, cached) as store:
        fixed = clock.FixedClock(BENCH_NOW)
        with clock.using(fixed):
            async with store.transaction() as session:
                for spec in specs:
                    store_campaign(session, spec, origin="program", now=BENCH_NOW)
            fixed.set(TICK_AT)
            started = time.perf_counter()
            planned = await plan_due_runs(store, chosen, settings, TICK_AT)
            seconds = time.perf_counter() - started
        floor_seconds = await _floor(store, chosen, specs, TICK_AT)
    outcomes: Counter[str] = Counter()
    for run in planned:
        outcomes.update({outcome.key: count for outcome, count in run.plan.outcomes.items()})
    ratio = seconds / floor_seconds
    return {
        "bench": "plan",
        "backend": "sqlite",
        "customers": customers,
        "campaigns": len(specs),
        "segments": len(chosen.segments),
        "runs": len(planned),
        "seconds": round(seconds, 3),
        "floor_seconds": round(floor_seconds, 6),  # a few milliseconds on small data
        "ratio": round(ratio, 3),
        "targeted": sum(run.plan.targeted for run in planned),
        "queued": _total(planned, Outcome.QUEUED),
        "control": _total(planned, Outcome.CONTROL),
        "held": _total(planned, Outcome.HELD),
        "excluded": sum(run.plan.excluded for run in planned),
        "outcomes": dict(sorted(outcomes.items())),
        "target_seconds": TARGET_SECONDS,
        "target_ratio": TARGET_RATIO,
        "meets_target": seconds <= TARGET_SECONDS and ratio <= TARGET_RATIO,
    }


def bench_campaigns(program: Program, campaigns: int) -> list[CampaignSpec]:
    """``campaigns`` active cycle campaigns over segments spread along ``program``'s list.

    Neighbouring pairs of segments are taken at a regular stride, so the
    chosen ones cover every stage and every kind of generated rule.
    """
    total = len(program.segments)
    stride = max(2 * total // campaigns, 2)
    return [
        _campaign(program, number, program.segments[((number // 2) * stride + number % 2) % total])
        for number in range(campaigns)
    ]


def _campaign(program: Program, number: int, segment: SegmentDefinition) -> CampaignSpec:
    """Campaign ``number`` over ``segment``: mostly email marketing, a few transactional."""
    transactional = number % 40 == 17
    stage = None
    if number % 6 == 3:  # narrowed to a stage: the segment's own, or one for a stageless one
        stage = segment.spec.stage or program.stages[number % len(program.stages)].name
    rule = {8: "consent_email == true", 18: "purchase_count >= 1"}.get(number % 20)
    return CampaignSpec.model_validate(
        {
            "name": f"bench-plan-{number:03d}",
            "description": "generated for the planning benchmark",
            "kind": "cycle",
            "target": {"segment": segment.spec.name, "stage": stage, "rule": rule},
            "channel": "email",
            "variants": ["offer_a", "offer_b"] if number % 2 else ["winback"],
            "priority": 90 if transactional else _PRIORITIES[number % len(_PRIORITIES)],
            "category": "transactional" if transactional else "marketing",
            "control": 0 if transactional else 10,
            "cooldown": None if transactional else "21d",
            "schedule": SCHEDULE,
        }
    )


def _total(planned: list[PlannedRun], outcome: Outcome) -> int:
    return sum(run.plan.count(outcome) for run in planned)


async def _materialised_database(settings: Settings, program: Program, customers: int) -> Path:
    """The benchmark data with ``program``'s scores, stages and segments refreshed at
    ``BENCH_NOW``, built on first use; its name changes with the program's rules."""

    async def prepare(store: Store) -> None:
        await refresh_intel(store, program, BENCH_NOW, zone=settings.zone)
        await refresh_everything(store, program, BENCH_NOW)

    name = f"plan-{customers}-{rules_digest(program)}.db"
    return await derived_database(settings, customers, name, prepare)


def rules_digest(program: Program) -> str:
    """A short digest of what the materialised tables depend on: the stage and segment
    rules, the segments' stages and the program's params."""
    parts = [f"stage {stage.name}: {stage.rule.text}" for stage in program.stages]
    parts += [
        f"segment {segment.spec.name} in {segment.spec.stage}: {segment.rule.text}"
        for segment in program.segments
    ]
    parts.append(repr(sorted(program.params.items())))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


async def _floor(store: Store, program: Program, specs: list[CampaignSpec], now: datetime) -> float:
    """Seconds to count each campaign's target once from its rules (see the module doc)."""
    targets = [_target_rules(program, spec) for spec in specs]
    seconds = 0.0
    async with store.reading() as session:
        for rules in targets:
            tables = frozenset().union(*(rule.tables for rule in rules))
            matching = (
                select(CUSTOMERS.c.id)
                .select_from(join_rule_tables(CUSTOMERS, tables))
                .where(*(rule.condition(now) for rule in rules))
            )
            started = time.perf_counter()
            await session.execute(select(func.count()).select_from(matching.subquery()))
            seconds += time.perf_counter() - started
    return seconds


def _target_rules(program: Program, spec: CampaignSpec) -> list[Rule]:
    """The rules that together say who ``spec`` targets, as the catalogue evaluates them."""
    target = spec.target
    rules: list[Rule] = []
    if target is None:  # a triggered campaign: whom its trigger matches
        return rules
    if target.segment is not None:
        segment = program.segment(target.segment)
        rules.append(segment.rule)
        if segment.spec.stage is not None:
            rules.append(parse_rule(f'stage == "{segment.spec.stage}"'))
    if target.stage is not None:
        rules.append(parse_rule(f'stage == "{target.stage}"'))
    if target.rule is not None:
        rules.append(parse_rule(target.rule, params=program.params))
    return rules
