"""Commands for the store: set-up, schema, import, demo data and the demo."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import click
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.cli.app import (
    cli,
    common_options,
    err,
    load_command_program,
    load_command_settings,
    masked_url,
    out,
    run,
    run_fast,
    safe_url,
    with_store,
)
from core.cli.simulate_commands import simulation_progress
from core.db import Store
from core.errors import CadenceError
from core.ingest import ImportReport, Kind, import_file
from core.ingest.source import STDIN, Format
from core.policy import Outcome
from core.settings import Settings, load_settings
from core.summary import StoreSummary

EXIT_REJECTED = 3
"""Exit status of an import that imported the good rows but rejected some."""


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Write into a folder that is not empty.")
@common_options
def init(directory: Path, force: bool) -> None:
    """Write a starter configuration (settings, default program, templates) to DIRECTORY."""
    if directory.exists() and any(directory.iterdir()) and not force:
        raise CadenceError(f"{directory} is not empty; choose another folder or pass --force")
    shutil.copytree(
        DEFAULT_CONFIG_DIR,
        directory,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__init__.py", "__pycache__"),
    )
    out.print(f"Wrote a starter configuration to [bold]{directory}[/]. Next:")
    out.print(f"  edit {directory / 'cadence.toml'} (database_url, time_zone)")
    out.print(f"  cadence --config {directory} db upgrade")


@cli.group()
def config() -> None:
    """Inspect the settings."""


@config.command("show")
@common_options
def config_show() -> None:
    """Print the effective settings (file plus environment); secrets are masked."""
    settings = load_command_settings()
    shown = settings.model_dump(mode="json", exclude={"settings_file"})
    shown["database_url"] = masked_url(settings.database_url)
    out.print(f"# from {settings.settings_file}")
    out.print_json(data=shown)


@cli.group()
def db() -> None:
    """Create and migrate the store."""


@db.command("upgrade")
@common_options
def db_upgrade() -> None:
    """Create the tables or migrate them to the latest schema."""
    from core.migrations import current_revision, upgrade

    async def work(store: Store) -> str | None:
        await upgrade(store)
        return await current_revision(store)

    settings = load_command_settings()
    revision = run(with_store(settings, work, needs_schema=False))
    out.print(f"Database at schema revision {revision}: {safe_url(settings)}")


@db.command("status")
@common_options
def db_status() -> None:
    """Show the schema revision and what the store holds."""
    from core.migrations import current_revision, head_revision
    from core.summary import summarise_store

    settings = load_command_settings()

    async def work(store: Store) -> None:
        revision = await current_revision(store)
        out.print(f"Database: {safe_url(settings)}")
        out.print(f"Schema: {revision or 'empty'} (latest {head_revision()})")
        if revision is None:
            out.print("Run `cadence db upgrade` to create the tables.")
            return
        async with store.reading() as session:
            print_summary(await summarise_store(session, clock.now()))

    run(with_store(settings, work, needs_schema=False))


@cli.command("import")
@click.argument("kind", type=click.Choice(["customers", "events", "transactions"]))
@click.argument("file", metavar="FILE")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Override the format.")
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Read FIELD from the file's COLUMN, e.g. --map customer_id=cust_no (repeatable).",
)
@click.option(
    "--rejects",
    type=click.Path(path_type=Path),
    help="Where rejected rows go (default: FILE.rejects.jsonl).",
)
@common_options
def import_command(
    kind: Kind, file: str, fmt: Format | None, mappings: tuple[str, ...], rejects: Path | None
) -> None:
    """Import customers, events or transactions from FILE (CSV or JSONL; - reads JSONL from stdin).

    \b
    customers     upsert by customer_id; other columns become attributes
    events        append idempotently; other columns become properties
    transactions  customer_id,date,quantity,amount rows become purchases;
                  customers are created as needed
    """
    settings = load_command_settings()
    mapping = _parse_mappings(mappings)

    async def work(store: Store) -> ImportReport:
        with ImportProgress(file) as on_progress:
            return await import_file(
                store,
                settings,
                kind,
                file,
                fmt=fmt,
                mapping=mapping,
                rejects_path=rejects,
                on_progress=on_progress,
            )

    report = run(with_store(settings, work))
    print_import_report(report)
    if report.rejected:
        sys.exit(EXIT_REJECTED)


def _parse_mappings(mappings: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in mappings:
        field, sep, column = item.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise click.BadParameter(f"{item!r} is not FIELD=COLUMN", param_hint="--map")
        parsed[field.strip()] = column.strip()
    return parsed


class ImportProgress:
    """A progress bar on a terminal; nothing when output is piped."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.total = 0

    def __enter__(self) -> Callable[[ImportReport, int], None] | None:
        if not err.is_terminal:
            return None
        self.total = 0 if self.path == STDIN else Path(self.path).stat().st_size
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[rows]:>12,} rows"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "stdin" if self.path == STDIN else Path(self.path).name, total=None, rows=0
        )
        return self.update

    def update(self, report: ImportReport, bytes_read: int) -> None:
        assert self.progress is not None and self.task is not None
        self.progress.update(
            self.task, completed=bytes_read, total=self.total or None, rows=report.read
        )

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def print_import_report(report: ImportReport) -> None:
    rate = f"{report.rows_per_second:,.0f} rows/s"
    out.print(f"Imported {report.kind} from {report.source} in {report.seconds:.1f} s ({rate})")
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_row("read", f"{report.read:,}")
    table.add_row("new", f"{report.inserted:,}")
    if report.kind == "customers":
        table.add_row("updated", f"{report.updated:,}")
    table.add_row(
        "unchanged" if report.kind == "customers" else "already stored", f"{report.unchanged:,}"
    )
    if report.customers_created:
        table.add_row("customers created", f"{report.customers_created:,}")
    if report.held:
        table.add_row("dated after now", f"{report.held:,}  (counted once their time comes)")
    if report.erased:
        table.add_row(
            "erased customers", f"{report.erased:,}  rows not imported (they were erased)"
        )
    rejected = f"{report.rejected:,}"
    if report.rejected:
        rejected += f"  → {report.rejects_path} (line and reason for each)"
    table.add_row("rejected", rejected)
    out.print(table)


@cli.command("demo-data")
@click.option("--customers", default=2_000, show_default=True, type=click.IntRange(1))
@click.option("--days", default=365, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=7, show_default=True, type=int)
@common_options
def demo_data(customers: int, days: int, seed: int) -> None:
    """Generate realistic, deterministic customers and events into the store."""
    from core.demo_data import load_demo_data

    settings = load_command_settings()

    async def work(store: Store) -> None:
        await load_demo_data(store, settings, customers=customers, days=days, seed=seed)

    run(with_store(settings, work))
    out.print(f"Loaded demo data: {customers:,} customers over {days} days (seed {seed}).")


@cli.command()
@click.option(
    "--dir",
    "directory",
    default="cadence-demo",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the demo database goes.",
)
@click.option("--customers", default=2_000, show_default=True, type=click.IntRange(1))
@click.option("--days", default=365, show_default=True, type=click.IntRange(1))
@click.option(
    "--month-days",
    default=30,
    show_default=True,
    type=click.IntRange(1),
    help="How many of the last days are simulated with the program live.",
)
@click.option("--seed", default=7, show_default=True, type=int)
@click.option(
    "--console/--no-console",
    "open_console",
    default=None,
    help="Open the console at the end (default: when run in a terminal).",
)
@common_options
def demo(
    directory: Path,
    customers: int,
    days: int,
    month_days: int,
    seed: int,
    open_console: bool | None,
) -> None:
    """The showcase: demo customers, a simulated month of the default program, its stage
    KPIs and campaign uplift, then the console with the scheduler running inside it."""
    from core.cli.intel_commands import print_stage_overview
    from core.cli.report_commands import print_report
    from core.cli.run_commands import print_plans
    from core.demo import prepare_demo_directory, run_demo, simulation_start
    from core.measure.campaign_report import campaigns_report
    from core.measure.kpi_report import stages_report

    load_command_settings()  # --now applies to the demo too
    settings = load_settings(prepare_demo_directory(directory))
    if clock.is_wall_clock():
        _run_as_of_daytime(settings)
    out.print(
        f"Simulating the program's first {month_days} days over {customers:,} demo customers "
        "(a minute or two)..."
    )
    start = simulation_start(clock.now(), month_days)
    with simulation_progress(start, month_days) as reached:
        result = run_fast(
            run_demo(
                settings,
                customers=customers,
                days=days,
                seed=seed,
                month_days=month_days,
                progress=reached,
            )
        )
    print_summary(result.summary)
    print_stage_overview(result.stages, clock.now())
    largest = sorted(result.segments, key=lambda segment: segment.size, reverse=True)[:8]
    out.print(
        f"{len(result.segments)} segments refreshed; the largest: "
        + ", ".join(f"{segment.name} ({segment.size:,})" for segment in largest)
    )
    plans = result.planned
    print_plans(
        plans,
        "The scheduler's first tick: every cycle campaign's latest slot, through the contact "
        "policy",
    )
    cycles = sorted(
        (moment, name) for name, moment in result.jobs.items() if name.startswith("cycle:")
    )
    if cycles:
        moment, name = cycles[0]
        out.print(
            f"{len(result.jobs)} scheduler jobs; the next cycle is {name.removeprefix('cycle:')} "
            f"at {moment[:16].replace('T', ' ')}. `cadence --config {directory} run` keeps "
            "them running."
        )
    delivery = result.delivery
    held = sum(plan.count(Outcome.HELD) for plan in plans)
    out.print(
        f"\nDelivered the messages due now: {delivery.stats.sent:,} e-mails sent to a local "
        f"SMTP sink, {delivery.arrived:,} arrived in {delivery.maildir} (a maildir)"
        + (f"; {held:,} held by quiet hours wait for the customers' morning." if held else ".")
    )
    simulated = result.simulated
    out.print(
        f"\nThe simulated month: {simulated.messages_sent:,} messages sent, "
        f"{simulated.events_stored:,} customer events (opens, clicks, purchases)."
    )
    minimum = settings.measure.min_sample_per_arm
    print_report(stages_report(result.kpis, result.window, settings.zone), "table")
    measured = [u for u in result.uplifts if u.measured.goal is not None and u.measured.runs]
    print_report(campaigns_report(measured, clock.now(), settings.zone, minimum), "table")
    out.print(
        f"\nThe demo store is {directory / 'cadence.db'}; open the console with "
        f"`cadence --config {directory} console --embedded`, or explore it with "
        f"`cadence --config {directory} report stages`, `... segments list` or "
        "`... campaign list`."
    )
    if open_console is None:
        open_console = sys.stdin.isatty() and sys.stdout.isatty()
    if open_console:
        _open_demo_console(settings, directory)


def _run_as_of_daytime(settings: Settings) -> None:
    """At night for the demo's customers (quiet hours), run the demo as of the latest
    daytime moment instead, its clock flowing from there, so its first run reaches them."""
    from core.demo import daytime_moment

    now = clock.now()
    moment = daytime_moment(now, settings.policy.quiet)
    if moment == now:
        return
    clock.install(clock.ShiftedClock(moment - now))
    out.print(
        f"It is quiet hours ({settings.policy.quiet_hours}) for the demo's customers, so the "
        f"demo runs as of {moment:%Y-%m-%d %H:%M} UTC, when they can be reached "
        "(pass --now to choose the moment)."
    )


def _open_demo_console(settings: Settings, directory: Path) -> None:
    from console.run import run_console_with_sink

    program = load_command_program(settings)

    async def work(store: Store) -> None:
        await run_console_with_sink(store, settings, program, directory / "sink")

    run_fast(with_store(settings, work))


def print_summary(summary: StoreSummary) -> None:
    table = Table(title="Store", show_header=False, box=None, padding=(0, 2))
    table.add_row("customers", f"{summary.customers:,}")
    table.add_row("  who ever bought", f"{summary.purchasers:,}")
    table.add_row("  who bought in the last 90 days", f"{summary.bought_last_90d:,}")
    table.add_row("  active in the last 30 days", f"{summary.active_last_30d:,}")
    table.add_row("revenue", f"{summary.revenue_total:,.2f}")
    span = (
        f"{summary.first_event:%Y-%m-%d} to {summary.last_event:%Y-%m-%d}"
        if summary.first_event and summary.last_event
        else "none"
    )
    table.add_row("events", f"{summary.events:,}  ({span})")
    for kind, count in summary.events_by_type:
        table.add_row(f"  {kind}", f"{count:,}")
    out.print(table)
