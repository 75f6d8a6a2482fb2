"""The import loop shared by customers, events and transactions.

Rows are parsed in the event loop while the previous batch is written, so
on SQLite the parsing overlaps the database's work in the driver's thread.
Each batch is one transaction: an interrupted import keeps what it
committed, and a re-run skips it because every write is idempotent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Store
from core.ingest.report import ImportReport, RejectsFile
from core.ingest.source import Rejected, RowError
from core.ingest.source import Row as SourceRow

Parsed = TypeVar("Parsed")

YIELD_EVERY = 2_000
"""Rows parsed between two turns of the event loop (progress, the write in flight)."""


class BatchItem(Generic[Parsed]):
    """A parsed row on its way to the database, with what a late reject needs."""

    __slots__ = ("line", "raw", "record")

    def __init__(self, line: int, raw: str, record: Parsed) -> None:
        self.line = line
        self.raw = raw
        self.record = record


class Importer(Protocol[Parsed]):
    """Turns rows into records and writes batches of them."""

    kind: str
    required: tuple[str, ...]

    def parse(self, row: SourceRow) -> Parsed:
        """The row's record; raises :class:`RowError` to reject it."""
        ...

    async def write(
        self, session: AsyncSession, batch: list[BatchItem[Parsed]], report: ImportReport
    ) -> list[tuple[BatchItem[Parsed], str]]:
        """Write a batch inside ``session``'s transaction; returns the items it refused."""
        ...


Progress = Callable[[ImportReport], None]


async def run_import(
    store: Store,
    importer: Importer[Parsed],
    rows: Iterable[SourceRow | Rejected],
    rejects: RejectsFile,
    *,
    batch_size: int,
    source_name: str,
    on_progress: Progress | None = None,
) -> ImportReport:
    report = ImportReport(kind=importer.kind, source=source_name, rejects_path=rejects.path)
    started = time.perf_counter()
    in_flight: asyncio.Task[None] | None = None

    async def write(batch: list[BatchItem[Parsed]]) -> None:
        async with store.transaction() as session:
            refused = await importer.write(session, batch, report)
        for item, reason in refused:
            rejects.write(item.line, reason, item.raw)
        report.rejected += len(refused)

    batch: list[BatchItem[Parsed]] = []
    try:
        for count, row in enumerate(rows, start=1):
            report.read += 1
            if isinstance(row, Rejected):
                rejects.write(row.line, row.reason, row.raw)
                report.rejected += 1
            else:
                try:
                    batch.append(BatchItem(row.line, row.raw, importer.parse(row)))
                except RowError as error:
                    rejects.write(row.line, str(error), row.raw)
                    report.rejected += 1
            if len(batch) >= batch_size:
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.create_task(write(batch))
                batch = []
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)
                if on_progress is not None:
                    on_progress(report)
        if in_flight is not None:
            await in_flight
            in_flight = None
        if batch:
            await write(batch)
    finally:
        if in_flight is not None:
            await asyncio.gather(in_flight, return_exceptions=True)
        rejects.close()
    report.seconds = time.perf_counter() - started
    if on_progress is not None:
        on_progress(report)
    return report
