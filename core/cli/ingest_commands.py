"""``cadence ingest -`` (events as JSONL on standard input, in real time) and
``cadence api token`` (a new token for ``POST /v1/events``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import click

from core import clock
from core.cli.app import (
    cli,
    common_options,
    err,
    load_command_program,
    load_command_settings,
    out,
    run,
    with_store,
)
from core.cli.store_commands import EXIT_REJECTED
from core.db import Store
from core.ingest.events import EventImporter
from core.ingest.live import LiveReport, ingest_events
from core.ingest.source import STDIN, Rejected, Row, RowSource

SOURCE = "ingest"
"""``Event.source`` of events read by ``cadence ingest`` without a source of their own."""


@cli.command("ingest")
@click.argument("source", metavar="-")
@common_options
def ingest_command(source: str) -> None:
    """Read events as JSONL from standard input and ingest them as the HTTP API does.

    Each batch of ``ingest.max_batch_events`` lines is stored and fires its triggers at
    once. Refused lines are written to standard error as JSON with their line number and
    reason; a summary goes to standard output. Exits 3 when any line was refused.
    """
    if source != STDIN:
        raise click.UsageError(
            "`cadence ingest` reads standard input: `producer | cadence ingest -`; "
            "for a file use `cadence import events FILE`"
        )
    settings = load_command_settings()
    program = load_command_program(settings)

    async def work(store: Store) -> LiveReport:
        total = LiveReport()
        rows = RowSource(
            STDIN,
            "jsonl",
            required=EventImporter.required,
            max_field_bytes=settings.imports.max_field_bytes,
        )
        try:
            for chunk in _chunks(rows, settings.ingest.max_batch_events):
                report = await ingest_events(
                    store, program, settings, chunk, clock.now(), source=SOURCE
                )
                for refused in report.refused:
                    line = {"line": refused.position, "status": refused.status}
                    err.print(json.dumps({**line, "reason": refused.reason}), markup=False)
                total.received += report.received
                total.stored += report.stored
                total.repeated += report.repeated
                total.customers_created += report.customers_created
                total.refused += report.refused
                total.runs += report.runs
        finally:
            rows.close()
        return total

    total = run(with_store(settings, work))
    summary = total.as_dict("line")
    summary["rejected"] = len(total.refused)
    out.print(json.dumps(summary), markup=False)
    if total.refused:
        sys.exit(EXIT_REJECTED)


def _chunks(rows: RowSource, size: int) -> Iterator[list[Row | Rejected]]:
    """The input's rows in lists of ``size``: one transaction each."""
    chunk: list[Row | Rejected] = []
    for item in rows:
        if isinstance(item, Row | Rejected):
            chunk.append(item)
        else:  # JSONL never comes as CSV runs
            chunk.extend(item.rows())
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@cli.group("api")
def api_group() -> None:
    """The HTTP API's credentials."""


@api_group.command("token")
@common_options
def api_token() -> None:
    """Print a new token for POST /v1/events and the hash line to add to the settings.

    Only the hash is stored: give the token to the sender and add the line to
    ``api.ingest_token_hashes`` (several tokens may be listed, to rotate them).
    """
    from core.api.auth import new_ingest_token

    token, digest = new_ingest_token()
    out.print(f"token: {token}", markup=False)
    out.print(f'settings: [api] ingest_token_hashes = ["{digest}"]', markup=False)
