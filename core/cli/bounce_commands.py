"""``cadence bounces``: delivery status notifications in, hard bounces suppressed."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from core import clock
from core.bounces import MailboxFormat, MailboxTally, ingest_mailbox
from core.cli.app import cli, common_options, load_command_settings, out, run, with_store
from core.db import Store


@cli.group()
def bounces() -> None:
    """Bounces and complaints: hard bounces and complaints suppress the address."""


@bounces.command("ingest")
@click.argument("mailbox", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "chosen",
    type=click.Choice(["maildir", "mbox"]),
    help="The mailbox's format (default: a folder with cur/ and new/ is a maildir, a file "
    "an mbox).",
)
@common_options
def ingest(mailbox: Path, chosen: MailboxFormat | None) -> None:
    """Read the bounce reports (RFC 3464) and complaints (ARF) in MAILBOX and record them.

    The mailbox is only read; ingesting it again suppresses nothing new.
    """
    settings = load_command_settings()

    async def work(store: Store) -> MailboxTally:
        return await ingest_mailbox(store, mailbox, clock.now(), chosen=chosen)

    tally = run(with_store(settings, work))
    bounced = tally.bounces
    table = Table(title=f"Bounces in {mailbox}", show_header=False, box=None, padding=(0, 2))
    table.add_row("messages read", f"{tally.messages:,}")
    table.add_row("hard bounces", f"{bounced.hard:,}")
    table.add_row("soft bounces", f"{bounced.soft:,}")
    table.add_row("complaints", f"{bounced.complaints:,}")
    table.add_row("not a bounce report", f"{tally.not_reports:,}")
    table.add_row("matched to sent messages", f"{bounced.matched:,}")
    table.add_row("suppressed now", f"{bounced.suppressed:,}")
    out.print(table)
