"""``cadence bench console``: how fast the console paints its dashboard and switches
screens over a large store, and how much memory it needs.

The store is the KPI benchmark's (:func:`core.bench_kpi.kpi_database`: a million
customers by default, staged, with a hundred campaigns and their outbox rows), plus
the KPI snapshot of its last day and the figures the scheduler stores for the console
(:mod:`core.figures`: uplifts, message counts), built once (in a child process, so the building
does not count towards the console's memory) and copied fresh for each run. The console
then starts headless (Textual's own headless driver, at 160x48) on the copy:
``start_to_dashboard_ms`` runs from creating the app to the dashboard painted with
its data; ``screen_switch_ms`` from a screen's key to that screen painted with its
data, for every screen (the slowest is the one with a target); ``peak_rss_mb`` is the
process's peak resident memory (the store opened as ``cadence console`` opens it, see
:func:`console.context.console_settings`). The ``_cpu_ms`` fields are the process's CPU
time (its database threads' included) over the same spans: on a shared machine the times
above also count the waits for a core, these only the console's own work.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from console.app import CadenceConsole
from console.context import ConsoleContext, console_settings
from console.screens.base import StoreScreen
from core import clock
from core.bench_data import BENCH_NOW, cached_file, open_store
from core.bench_kpi import kpi_database, kpi_store
from core.figures import write_message_counts, write_uplifts
from core.measure.snapshots import write_kpi_snapshot
from core.migrations import upgrade
from core.program import Program, load_program
from core.settings import Settings

TARGET_DASHBOARD_MS = 1500.0
TARGET_SWITCH_MS = 300.0
TARGET_RSS_MB = 400.0
SIZE = (160, 48)


async def benchmark_console(
    settings: Settings, *, customers: int, database_url: str | None
) -> dict[str, Any]:
    """Run the benchmark; returns the fields of its JSON line."""
    cached = _built_elsewhere(settings, customers)
    program = _program(settings)
    async with kpi_store(console_settings(settings), cached, database_url) as store:
        with clock.using(clock.FixedClock(BENCH_NOW)):
            context = ConsoleContext(store, settings, program, actor="bench")
            started, started_cpu = time.perf_counter(), time.process_time()
            app = CadenceConsole(context)
            switches: dict[str, float] = {}
            switches_cpu: dict[str, float] = {}
            async with app.run_test(size=SIZE) as pilot:
                await _painted(app, pilot)
                dashboard_ms = (time.perf_counter() - started) * 1000
                dashboard_cpu_ms = (time.process_time() - started_cpu) * 1000
                for entry in app.entries[1:]:
                    begun, begun_cpu = time.perf_counter(), time.process_time()
                    await pilot.press(entry.key)
                    await _painted(app, pilot)
                    switches[entry.mode] = round((time.perf_counter() - begun) * 1000, 1)
                    switches_cpu[entry.mode] = round((time.process_time() - begun_cpu) * 1000, 1)
                    await pilot.press("escape")  # out of a search field, if it has one
            backend = store.backend
    slowest = max(switches.values(), default=0.0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "benchmark": "console",
        "database": backend,
        "customers": customers,
        "start_to_dashboard_ms": round(dashboard_ms, 1),
        "screen_switch_ms": slowest,
        "screen_switches_ms": switches,
        "start_to_dashboard_cpu_ms": round(dashboard_cpu_ms, 1),
        "screen_switches_cpu_ms": switches_cpu,
        "peak_rss_mb": round(rss_mb, 1),
        "target_dashboard_ms": TARGET_DASHBOARD_MS,
        "target_switch_ms": TARGET_SWITCH_MS,
        "target_rss_mb": TARGET_RSS_MB,
        "meets_target": dashboard_ms <= TARGET_DASHBOARD_MS
        and slowest <= TARGET_SWITCH_MS
        and rss_mb <= TARGET_RSS_MB,
    }


async def _painted(app: CadenceConsole, pilot: Any) -> None:
    """Until the screen shown has loaded what it shows (its first load since it was
    shown) and drawn it."""
    await pilot.pause()
    screen = app.screen
    if isinstance(screen, StoreScreen):
        await screen.first_load.wait()
    await pilot.pause()


def _program(settings: Settings) -> Program:
    return load_program(settings.resolve(settings.program_dir))


def _built_elsewhere(settings: Settings, customers: int) -> Path:
    """The cached store, built (the first time) in a child process."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        path: Path = pool.apply(_build, (settings, customers))
    return path


def _build(settings: Settings, customers: int) -> Path:
    return asyncio.run(_console_database(settings, customers))


async def _console_database(settings: Settings, customers: int) -> Path:
    """The KPI benchmark's store with the snapshot of its last full day, the campaigns'
    uplifts and the week's message counts, which the console reads (the scheduler would
    have written them)."""
    program = _program(settings)
    kpis = await kpi_database(settings, program, customers)

    async def build(path: Path) -> None:
        await asyncio.to_thread(shutil.copyfile, kpis, path)
        store = open_store(settings, path)
        try:
            await upgrade(store)  # the KPI store may have been built by an older Cadence
            with clock.using(clock.FixedClock(BENCH_NOW)):
                day = BENCH_NOW.astimezone(settings.zone).date() - timedelta(days=1)
                await write_kpi_snapshot(store, program, settings, day)
                await write_uplifts(store, program, settings, BENCH_NOW)
                await write_message_counts(store, settings, BENCH_NOW)
        finally:
            await store.close()

    return await cached_file(f"console-figures-{kpis.name}", build)
