"""A small living store for the console's tests: demo customers placed in their stages,
the default program applied, today's KPI snapshot written."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, closing
from datetime import timedelta
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable
from textual.worker import WorkerCancelled

from config import DEFAULT_CONFIG_DIR
from console.app import CadenceConsole
from console.context import ConsoleContext
from core import clock
from core.db import Store, create_engine
from core.db.copy import copy_tables
from core.demo_data import load_demo_data
from core.lifecycle import refresh_stages
from core.measure.snapshots import write_kpi_snapshot
from core.migrations import upgrade
from core.program import Program, load_program
from core.program.apply import apply_program
from core.segments import refresh_segments
from core.settings import Settings


def default_program() -> Program:
    return load_program(DEFAULT_CONFIG_DIR / "program", DEFAULT_CONFIG_DIR / "templates")


_BUILT: dict[tuple[object, ...], Path] = {}
"""Living stores built in this test session, kept as SQLite files, by what they depend on."""
_BUILT_FOLDER = tempfile.TemporaryDirectory(prefix="cadence-living-")


async def living_store(
    store: Store,
    settings: Settings,
    *,
    customers: int = 300,
    refreshed_before: Sequence[timedelta] = (),
) -> Program:
    """Demo data, stages, segments and the default program, as of the clock's now; stages
    and segments are refreshed that long before now too (oldest first), for a history.

    ``store`` must be empty. The first test to ask for a living store builds it on its
    own database, which is then kept; later tests asking for the same one (same
    database kind, size, history, pinned clock and zone) get a copy of it, since building
    one takes seconds of CPU and dozens of tests each start from one.
    """
    program = default_program()
    key = (store.backend, customers, tuple(refreshed_before), clock.now(), settings.zone)
    kept = _BUILT.get(key)
    if kept is not None:
        await _copy_kept(settings, kept, store)
        return program
    await _build_living_store(store, settings, program, customers, refreshed_before)
    if clock.is_wall_clock():
        return program  # as of a moment no later test will ask for again: not kept
    kept = Path(_BUILT_FOLDER.name) / f"living-{len(_BUILT)}.db"
    built = store.database_file
    if built is not None:
        _sqlite_copy(built, kept)
        with closing(sqlite3.connect(kept)) as copy:
            copy.execute("ANALYZE")  # for every copy, as copy_tables gathers statistics
    else:
        async with _file_store(settings, kept) as copy:
            await upgrade(copy)
            await copy_tables(store, copy)
    _BUILT[key] = kept
    return program


async def _copy_kept(settings: Settings, kept: Path, store: Store) -> None:
    """The kept living store into ``store``: on SQLite its pages, through SQLite's backup
    API (milliseconds, where copying its rows took a second of CPU), else its rows."""
    target = store.database_file
    if target is not None:
        _sqlite_copy(kept, target)
        return
    async with _file_store(settings, kept) as source:
        await copy_tables(source, store)


def _sqlite_copy(source: Path, target: Path) -> None:
    """``target``'s database replaced by a copy of ``source``'s, through SQLite's backup
    API, which copies a database in WAL mode whole."""
    with closing(sqlite3.connect(source)) as reading, closing(sqlite3.connect(target)) as copy:
        reading.backup(copy)


@asynccontextmanager
async def _file_store(settings: Settings, path: Path) -> AsyncIterator[Store]:
    store = Store(create_engine(f"sqlite+aiosqlite:///{path}", settings.sqlite))
    try:
        yield store
    finally:
        await store.close()


async def _build_living_store(
    store: Store,
    settings: Settings,
    program: Program,
    customers: int,
    refreshed_before: Sequence[timedelta],
) -> None:
    now = clock.now()
    await load_demo_data(store, settings, customers=customers, days=120, seed=3)
    for moment in [now - ago for ago in refreshed_before] + [now]:
        async with store.transaction() as session:
            await refresh_stages(session, program, moment)
        await refresh_segments(store, program, moment)
    await apply_program(store, program, now - timedelta(days=1))
    await write_kpi_snapshot(store, program, settings, now.astimezone(settings.zone).date())


def console_app(
    store: Store, settings: Settings, program: Program, *, read_only: bool = False
) -> CadenceConsole:
    """The console over ``store`` as operator ``ops``, with the shipped program and
    templates (the launch screen lists and renders them)."""
    settings.program_dir = DEFAULT_CONFIG_DIR / "program"
    settings.templates_dir = DEFAULT_CONFIG_DIR / "templates"
    context = ConsoleContext(store, settings, program, read_only_asked=read_only, actor="ops")
    return CadenceConsole(context)


async def settle(app: CadenceConsole, pilot: Pilot[None]) -> None:
    """Wait until the screens' loads have finished and their results are painted. A load
    that a newer one replaced (a live screen's next tick, a reload) counts as finished."""
    await pilot.pause()
    while True:
        try:
            await app.workers.wait_for_complete()
        except WorkerCancelled:
            continue
        break
    await pilot.pause()


async def show(app: CadenceConsole, pilot: Pilot[None], key: str) -> None:
    """The dashboard loaded first (as an operator sees it), then the screen of ``key``."""
    await settle(app, pilot)
    await pilot.press(key)
    await settle(app, pilot)


def column(table: DataTable[object], index: int) -> list[str]:
    """The text of column ``index`` of ``table``, top to bottom."""
    return [str(table.get_row(key)[index]) for key in table.rows]
