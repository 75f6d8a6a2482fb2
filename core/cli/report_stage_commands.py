"""``cadence report stages``, ``program``, ``trends`` and ``snapshot``: stage and program
KPIs as of now (or ``--now``), their daily snapshots, and writing a day's snapshot by hand."""

from __future__ import annotations

import difflib
import re
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, TypeVar

import click

from core import clock
from core.cli.app import (
    common_options,
    load_command_program,
    load_command_settings,
    out,
    run,
    with_store,
)
from core.cli.report_commands import format_option, print_report, report
from core.db import Store
from core.errors import CadenceError
from core.measure.export import ReportFormat
from core.program.model import STAGE_KPIS

if TYPE_CHECKING:  # loaded when a command runs, not for --help
    from zoneinfo import ZoneInfo

    from sqlalchemy.ext.asyncio import AsyncSession

    from core.measure.export import Report
    from core.measure.kpis import Window
    from core.program import Program

T = TypeVar("T")

_KPI_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""What every KPI the snapshots hold is called: one lower-case word, or several joined by _."""

_WINDOW = click.option(
    "--window-days",
    type=click.IntRange(1, 365),
    help="Measure over this many days (default: the settings' measure.kpi_window_days).",
)


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CadenceError(f"cannot read {value!r} as a day; use YYYY-MM-DD") from None


@report.command("stages")
@format_option
@_WINDOW
@common_options
def report_stages(output_format: ReportFormat, window_days: int | None) -> None:
    """Per lifecycle stage: size, moves, coverage, conversion, revenue per customer and
    churn, each beside the program's target."""
    from core.measure.kpi_report import stages_report
    from core.measure.stages import stage_kpis

    _print_measured(stage_kpis, stages_report, output_format, window_days)


@report.command("program")
@format_option
@_WINDOW
@common_options
def report_program(output_format: ReportFormat, window_days: int | None) -> None:
    """Program-wide: the automated share of messages against its target, messages per
    customer per week, opt-out, complaint and bounce rates."""
    from core.measure.kpi_report import programme_report
    from core.measure.programme import programme_kpis

    _print_measured(programme_kpis, programme_report, output_format, window_days)


def _print_measured(
    measure: Callable[[AsyncSession, Program, Window], Awaitable[T]],
    layout: Callable[[T, Window, ZoneInfo], Report],
    output_format: ReportFormat,
    window_days: int | None,
) -> None:
    """Measure the program over the window up to now and print it laid out as a report."""
    from core.measure.kpis import Window

    settings = load_command_settings()
    program = load_command_program(settings)
    window = Window(clock.now(), window_days or settings.measure.kpi_window_days)

    async def work(store: Store) -> T:
        async with store.reading() as session:
            return await measure(session, program, window)

    print_report(layout(run(with_store(settings, work)), window, settings.zone), output_format)


@report.command("snapshot")
@click.option(
    "--day",
    metavar="YYYY-MM-DD",
    help="The day to write (default: yesterday in the program's time zone); today is "
    "measured up to now.",
)
@common_options
def report_snapshot(day: str | None) -> None:
    """Write one day's KPI snapshot from the raw data, replacing the day's rows if any
    (the scheduler writes yesterday's every night)."""
    from core.measure.snapshots import write_kpi_snapshot

    settings = load_command_settings()
    program = load_command_program(settings)
    chosen = _day(day) or clock.now().astimezone(settings.zone).date() - timedelta(days=1)

    async def work(store: Store) -> None:
        written = await write_kpi_snapshot(store, program, settings, chosen)
        out.print(
            f"KPI snapshot of {written.day} written: {written.rows:,} rows for "
            f"{written.stages} stages and the program ({written.customers:,} customers), "
            f"as of {written.at.astimezone(settings.zone):%Y-%m-%d %H:%M %Z}."
        )

    run(with_store(settings, work))


@report.command("trends")
@click.option(
    "--kpi",
    default="coverage",
    show_default=True,
    help=f"A stage KPI ({', '.join(STAGE_KPIS)}, customers, entered...) or a program one "
    "(automated_share, messages_per_customer_week, opt_out_rate...).",
)
@click.option("--days", type=click.IntRange(1, 3660), default=14, show_default=True)
@click.option("--until", metavar="YYYY-MM-DD", help="The last day (default: yesterday).")
@format_option
@common_options
def report_trends(kpi: str, days: int, until: str | None, output_format: ReportFormat) -> None:
    """One KPI day by day from the daily snapshots, per stage."""
    from core.measure.kpi_report import trends_report
    from core.measure.snapshots import kpi_trends

    # The name is only ever compared with the names the snapshots hold, but anything that
    # cannot be a KPI's name is refused here, before the store is opened.
    if not _KPI_NAME.fullmatch(kpi):
        raise CadenceError(
            f"{kpi[:80]!r} is not a KPI name: KPIs are lower-case words joined by `_`, such as "
            f"`coverage` or `opt_out_rate` (`cadence report stages` and `report program` "
            f"show them)"
        )
    settings = load_command_settings()
    program = load_command_program(settings)
    last = _day(until) or clock.now().astimezone(settings.zone).date() - timedelta(days=1)

    async def work(store: Store) -> None:
        async with store.reading() as session:
            trends = await kpi_trends(session, until=last, days=days)
        known = {name for series in trends.values() for point in series for name in point.values}
        if known and kpi not in known:
            close = difflib.get_close_matches(kpi, sorted(known), n=1)
            hint = f"did you mean `{close[0]}`?" if close else f"known: {', '.join(sorted(known))}"
            raise CadenceError(f"the snapshots hold no KPI `{kpi}`; {hint}")
        stages = [stage.name for stage in program.stages]
        print_report(trends_report(trends, kpi, stages, last, days), output_format)

    run(with_store(settings, work))
