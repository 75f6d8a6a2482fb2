"""A small living store for the console's tests: demo customers placed in their stages,
the default program applied, today's KPI snapshot written."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from textual.pilot import Pilot
from textual.widgets import DataTable
from textual.worker import WorkerCancelled

from config import DEFAULT_CONFIG_DIR
from console.app import CadenceConsole
from console.context import ConsoleContext
from core import clock
from core.db import Store
from core.demo_data import load_demo_data
from core.lifecycle import refresh_stages
from core.measure.snapshots import write_kpi_snapshot
from core.program import Program, load_program
from core.program.apply import apply_program
from core.segments import refresh_segments
from core.settings import Settings


def default_program() -> Program:
    return load_program(DEFAULT_CONFIG_DIR / "program", DEFAULT_CONFIG_DIR / "templates")


async def living_store(
    store: Store,
    settings: Settings,
    *,
    customers: int = 300,
    refreshed_before: Sequence[timedelta] = (),
) -> Program:
    """Demo data, stages, segments and the default program, as of the clock's now; stages
    and segments are refreshed that long before now too (oldest first), for a history."""
    program = default_program()
    now = clock.now()
    await load_demo_data(store, settings, customers=customers, days=120, seed=3)
    for moment in [now - ago for ago in refreshed_before] + [now]:
        async with store.transaction() as session:
            await refresh_stages(session, program, moment)
        await refresh_segments(store, program, moment)
    await apply_program(store, program, now - timedelta(days=1))
    await write_kpi_snapshot(store, program, settings, now.astimezone(settings.zone).date())
    return program


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
