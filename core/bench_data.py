"""The benchmarks' data: customers with a year of behaviour, built once and cached.

A benchmark database is built once per size (and per preparation) under
``.cadence-bench/`` and sealed there; a run works on a fresh copy of it
(:func:`working_store`), so every run starts from the same bytes and a
half-built cache never survives an interruption. :func:`bench_program`
gives a program the number of segments a benchmark asks for.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core import event_types
from core.db import Store, create_engine
from core.db.types import epoch_micros
from core.lifecycle import refresh_stages
from core.migrations import upgrade
from core.models import Event
from core.program import Program, SegmentDefinition
from core.program.model import SegmentSpec
from core.rollups import rollup_upsert
from core.rules import parse_rule
from core.segments import refresh_segments
from core.settings import Settings

BENCH_NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
"""The data is built around this moment, so every run and every cache agree."""
CACHE_DIR = Path(".cadence-bench")
_CATEGORIES = ("slots", "live-casino", "sports", "poker", "lottery")
_COUNTRIES = ("PT", "PL", "IT", "GB")
_MICROS_PER_DAY = 86_400 * 1_000_000


def bench_program(program: Program, segments: int) -> Program:
    """``program`` with exactly ``segments`` segments: its own, then generated look-alikes."""
    stages = [None, *(stage.name for stage in program.stages)]
    chosen = list(program.segments[:segments])
    for number in range(len(chosen), segments):
        rule = _variant_rule(number)
        spec = SegmentSpec(
            name=f"bench-{number:03d}",
            description="generated for the benchmark",
            stage=stages[number % len(stages)],
            rule=rule,
            tags=["bench"],
        )
        chosen.append(SegmentDefinition(spec, parse_rule(rule, params=program.params)))
    return replace(program, segments=chosen)


def _variant_rule(number: int) -> str:
    """A realistic rule, different for every ``number``: thresholds, categories, windows."""
    step = number // 5
    category = _CATEGORIES[number % len(_CATEGORIES)]
    countries = json.dumps([_COUNTRIES[number % 4], _COUNTRIES[(number + 1) % 4]])
    return (
        f"revenue_total >= {50 * (step % 20)} and purchases_90d >= {step % 4}",
        f'attr("favourite_category") == "{category}" and engagement_score >= {step % 15}',
        f'days_since(last_active_at) <= {7 + step % 60} and attr("country") in {countries}',
        f'has_event("cart_add", within="{1 + step % 72}h") and purchase_count >= {step % 3}',
        f"recency_score >= {1 + step % 5} and monetary_score >= {1 + (step // 5) % 5}",
    )[number % 5]


async def refresh_everything(store: Store, program: Program, now: datetime) -> tuple[float, float]:
    """Seconds for a stage refresh plus a refresh of every segment, and for the stages alone."""
    started = time.perf_counter()
    async with store.transaction() as session:
        await refresh_stages(session, program, now)
    stages_done = time.perf_counter()
    await refresh_segments(store, program, now)
    return time.perf_counter() - started, stages_done - started


def open_store(settings: Settings, path: Path) -> Store:
    """A store on the SQLite file ``path``, with the settings' SQLite tuning."""
    return Store(create_engine(f"sqlite+aiosqlite:///{path}", settings.sqlite), settings.sqlite)


@asynccontextmanager
async def working_store(settings: Settings, cached: Path) -> AsyncIterator[Store]:
    """A store on a fresh copy of ``cached``, upgraded to the current schema; the copy
    is deleted afterwards."""
    # One copy per process: two runs of a size at once must not share (or delete) one.
    work = cached.with_name(f"run-{os.getpid()}-{cached.name}")
    await asyncio.to_thread(_copy_durably, cached, work)
    store = open_store(settings, work)
    try:
        await upgrade(store)  # a cache built by an older Cadence gets the current schema
        yield store
    finally:
        await store.close()
        for path in work.parent.glob(f"{work.name}*"):
            path.unlink()


def _copy_durably(source: Path, target: Path) -> None:
    """Copy ``source`` and flush the copy to disk, so the kernel's write-back of a
    gigabyte-sized copy does not compete with the timed work that follows."""
    shutil.copyfile(source, target)
    with target.open("rb+") as copied:
        os.fsync(copied.fileno())


async def cached_file(name: str, build: Callable[[Path], Awaitable[None]]) -> Path:
    """The cached database ``name``, made by ``build(path)`` on first use.

    ``build`` fills a file at ``path`` (not there yet); once it returns, the
    file is sealed and moved into place, so a cache is complete or absent.
    """
    cached, building = await asyncio.to_thread(_cache_paths, name)
    if building is not None:
        await build(building)
        await asyncio.to_thread(_seal, building, cached)
    return cached


async def cached_database(settings: Settings, customers: int) -> Path:
    """The benchmark database for ``customers`` (data and rollups, nothing derived yet)."""

    async def build(path: Path) -> None:
        store = open_store(settings, path)
        try:
            await upgrade(store)
            await store.close()
            await asyncio.to_thread(_fill, path, customers)
            store = open_store(settings, path)
            async with store.transaction() as session:
                everything = select(Event.customer_id, Event.type, Event.occurred_at, Event.value)
                await session.execute(rollup_upsert("sqlite", everything.subquery(), BENCH_NOW))
        finally:
            await store.close()

    return await cached_file(f"segments-{customers}.db", build)


async def derived_database(
    settings: Settings, customers: int, name: str, prepare: Callable[[Store], Awaitable[None]]
) -> Path:
    """The cached database ``name``: the benchmark data for ``customers`` upgraded to the
    current schema and then ``prepare``d, built on first use."""
    base = await cached_database(settings, customers)

    async def build(path: Path) -> None:
        await asyncio.to_thread(shutil.copyfile, base, path)
        store = open_store(settings, path)
        try:
            await upgrade(store)
            await prepare(store)
        finally:
            await store.close()

    return await cached_file(name, build)


def _cache_paths(name: str) -> tuple[Path, Path | None]:
    """The cached database, and where this process builds it when it is not there yet.

    The building file is this process's own: two processes wanting the same cache (a
    benchmark and a test run side by side) each build it, and the second to finish
    replaces the first's identical file, instead of one deleting the other's half-built
    file. A dead process's leftovers go.
    """
    CACHE_DIR.mkdir(exist_ok=True)
    cached = (CACHE_DIR / name).resolve()
    if cached.exists():
        return cached, None
    for leftover in cached.parent.glob(f"building-*-{cached.name}*"):
        owner = leftover.name.split("-", 2)[1]
        if owner.isdigit() and not _alive(int(owner)):
            leftover.unlink(missing_ok=True)
    return cached, cached.with_name(f"building-{os.getpid()}-{cached.name}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        pass
    return True


def _seal(building: Path, cached: Path) -> None:
    """Fold the WAL into the file and move it into place."""
    connection = sqlite3.connect(building)
    connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
    building.rename(cached)


def _fill(path: Path, customers: int) -> None:
    """Customers with a year of varied behaviour, written with plain sqlite3 for speed."""
    rng = random.Random(customers)
    now = epoch_micros(BENCH_NOW.replace(tzinfo=None))
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")  # a throw-away build; the cache is renamed in
    people, events = [], []
    for number in range(1, customers + 1):
        registered = now - int(rng.random() ** 2 * 3 * 365 * _MICROS_PER_DAY)
        attributes = {
            "country": rng.choice(_COUNTRIES),
            "favourite_category": rng.choice(_CATEGORIES),
        }
        people.append(
            (
                number,
                f"B{number:08d}",
                f"bench{number}@example.com",
                registered,
                json.dumps(attributes),
                rng.random() < 0.85,
                rng.random() < 0.5,
                rng.random() < 0.4,
                registered,
                registered,
            )
        )
        events.extend(_behaviour(rng, number, registered, now))
        if len(people) >= 50_000:
            _write(connection, people, events)
            people, events = [], []
    _write(connection, people, events)
    connection.close()


def _behaviour(
    rng: random.Random, customer: int, registered: int, now: int
) -> list[tuple[Any, ...]]:
    """A few events: purchases for buyers, logins, opens, cart adds; some lapse for good."""
    lapsed = 0 if rng.random() < 0.6 else int(rng.uniform(30, 300) * _MICROS_PER_DAY)
    active_until = max(now - lapsed, registered)
    span = max(active_until - registered, 1)
    kinds = [event_types.LOGIN, event_types.MESSAGE_OPENED, "cart_add", "page_view"]
    if rng.random() < 0.75:
        kinds += [event_types.PURCHASE] * rng.choice((1, 1, 2, 3, 5))
    rows = []
    for kind in kinds:
        at = active_until - int(rng.random() ** 2 * span)
        value = round(rng.uniform(5, 300), 2) if kind == event_types.PURCHASE else None
        rows.append((customer, kind, at, value, None, "bench", None, rng.getrandbits(62)))
    return rows


def _write(connection: sqlite3.Connection, people: list[Any], events: list[Any]) -> None:
    connection.executemany(
        "INSERT INTO customers (id, external_id, email, registered_at, attributes, "
        "consent_email, consent_sms, consent_push, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        people,
    )
    connection.executemany(
        "INSERT INTO events (customer_id, type, occurred_at, value, properties, source, "
        "idempotency_key, dedupe_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        events,
    )
    connection.commit()
