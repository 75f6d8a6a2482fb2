"""Operations: ``cadence check`` for on-call alerting, ``cadence db backup`` and
``cadence db restore``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import click
from rich import box
from rich.table import Table

from core import clock
from core.checks import CheckLimits, CheckResult, healthy, run_checks
from core.cli.app import cli, common_options, load_command_settings, out, run, with_store
from core.cli.store_commands import db
from core.db import Store
from core.errors import CadenceError

EXIT_UNHEALTHY = 4
"""Exit status of ``cadence check`` when a check failed (1 stays "the command itself
could not run", 3 "an import rejected rows")."""

_STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red"}


@cli.command("check")
@click.option(
    "--max-due",
    type=click.IntRange(min=0),
    help="Fail when more messages than this are due and unsent (default: report only).",
)
@click.option(
    "--max-wait-minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Fail when the oldest due message has waited longer than this.",
)
@click.option(
    "--no-scheduler",
    is_flag=True,
    help="Do not require a `cadence run` leader (deployments without the scheduler).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line for a monitor.")
@common_options
@click.pass_context
def check_command(
    ctx: click.Context,
    max_due: int | None,
    max_wait_minutes: float,
    no_scheduler: bool,
    as_json: bool,
) -> None:
    """Check the store's health: it answers, its schema is current, no lease is stuck,
    the queue moves and a leader's heartbeat is fresh. Exits 4 when a check fails."""
    settings = load_command_settings()
    limits = CheckLimits(
        max_due=max_due, max_wait=timedelta(minutes=max_wait_minutes), scheduler=not no_scheduler
    )

    async def work(store: Store) -> list[CheckResult]:
        return await run_checks(store, settings, clock.now(), limits)

    results = run(with_store(settings, work, needs_schema=False))
    ok = healthy(results)
    if as_json:
        checks = [result.__dict__ for result in results]
        out.print(json.dumps({"ok": ok, "checks": checks}), highlight=False, markup=False)
    else:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("check", "status", "detail"):
            table.add_column(column, no_wrap=column != "detail")
        for result in results:
            style = _STYLES[result.status]
            table.add_row(result.name, f"[{style}]{result.status}[/]", result.detail)
        out.print(table)
    if not ok:
        ctx.exit(EXIT_UNHEALTHY)


@db.command("backup")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
@common_options
def db_backup(path: Path, force: bool) -> None:
    """Copy the SQLite database to PATH while Cadence runs (PostgreSQL: how to use pg_dump)."""
    from core.backup import backup_sqlite, postgres_guidance

    settings = load_command_settings()

    async def work(store: Store) -> None:
        if store.backend == "postgresql":
            raise CadenceError(postgres_guidance(settings.database_url, path))
        copy = backup_sqlite(store, path, force=force)
        out.print(f"Backed up to {copy.path} ({copy.size:,} bytes, schema {copy.revision})")

    run(with_store(settings, work, needs_schema=False))


@db.command("restore")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--yes", is_flag=True, help="Replace the database without asking.")
@common_options
def db_restore(path: Path, yes: bool) -> None:
    """Replace the SQLite database with the backup at PATH (stop `cadence run` first)."""
    from core.backup import postgres_guidance, restore_sqlite
    from core.migrations import head_revision

    settings = load_command_settings()

    async def work(store: Store) -> None:
        if store.backend == "postgresql":
            raise CadenceError(postgres_guidance(settings.database_url, path))
        if not yes:
            click.confirm(f"Replace {store.database_file} with {path}?", abort=True)
        restored = await restore_sqlite(store, path)
        out.print(f"Restored {restored.path} (schema {restored.revision})")
        if restored.revision != head_revision():
            out.print("Run `cadence db upgrade` to bring the schema up to date.")

    run(with_store(settings, work, needs_schema=False))
