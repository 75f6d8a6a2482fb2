"""``cadence customer``: what is held about one customer, exported or erased (see
:mod:`core.privacy`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from rich.table import Table

from core import clock
from core.cli.app import cli, common_options, load_command_settings, out, run, with_store
from core.db import Store
from core.errors import CadenceError
from core.privacy import Erasure, erase_customer, export_customer


@cli.group()
def customer() -> None:
    """One customer's data: export it all, or erase it."""


@customer.command("export")
@click.argument("customer_id")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the JSON to this file instead of standard output.",
)
@common_options
def export_command(customer_id: str, output: Path | None) -> None:
    """Write everything held about CUSTOMER_ID (the id they were imported with) as JSON:
    the customer, their events, stages, scores, segments, journeys, messages and their
    outcomes, suppressions of their addresses and audit entries about them, by table."""
    settings = load_command_settings()

    async def work(store: Store) -> str:
        exported = await export_customer(store, customer_id, clock.now())
        return json.dumps(exported, indent=2, ensure_ascii=False)

    document = run(with_store(settings, work))
    if output is None:
        click.echo(document)
        return
    try:
        # Personal data: readable by the operator alone.
        with open(output, "w", encoding="utf-8", opener=_private) as stream:
            stream.write(document + "\n")
    except OSError as exc:
        raise CadenceError(f"{output}: cannot write the export ({exc.strerror})") from None
    out.print(f"Exported customer {customer_id} to {output}", markup=False, highlight=False)


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


@customer.command("erase")
@click.argument("customer_id")
@click.option("--yes", is_flag=True, help="Erase without asking.")
@common_options
def erase_command(customer_id: str, yes: bool) -> None:
    """Erase CUSTOMER_ID: delete every row about them in one transaction and keep only
    hashed identifiers (id, e-mail, phone), which stop imports from bringing them back.
    The audit log records the erasure without their data. This cannot be undone."""
    settings = load_command_settings()
    if not yes:
        click.confirm(
            f"Erase customer {customer_id} and everything held about them? This cannot be undone",
            abort=True,
        )

    async def work(store: Store) -> Erasure:
        return await erase_customer(store, customer_id, clock.now())

    erasure = run(with_store(settings, work))
    out.print(f"Erased customer {customer_id} ({erasure.reference})", markup=False)
    table = Table(show_header=False, box=None, padding=(0, 2))
    for name, count in sorted(erasure.deleted.items()):
        table.add_row(f"{name} deleted", f"{count:,}")
    if erasure.audit_entries:
        table.add_row("audit entries anonymised", f"{erasure.audit_entries:,}")
    table.add_row("hashed identifiers kept", f"{erasure.identifiers:,}")
    out.print(table)
