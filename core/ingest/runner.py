"""The import loop shared by customers, events and transactions.

Parsing and writing run side by side. For a large file a worker process
reads and parses it while this process writes the previous batch, so the
two halves use two cores (threads would not: SQLite's ``executemany``
needs the GIL for every row it binds). Each batch is one transaction: an
interrupted import keeps what it committed, and a re-run skips it because
every write is idempotent.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import queue
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Store
from core.errors import CadenceError
from core.ingest.report import ImportReport, RejectsFile
from core.ingest.source import CsvRun, Rejected, Row, RowError, RowSource

Parsed = TypeVar("Parsed")

CHUNK_ROWS = 5_000
"""Rows parsed per chunk: the unit of hand-over from the parser and of progress."""


@dataclass
class Batch(Generic[Parsed]):
    """Parsed rows in columns (cheap to pass between processes): line, raw text, record."""

    lines: list[int] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    records: list[Parsed] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def extend(self, other: Batch[Parsed]) -> None:
        self.lines.extend(other.lines)
        self.raws.extend(other.raws)
        self.records.extend(other.records)

    def split(self, size: int) -> tuple[Batch[Parsed], Batch[Parsed]]:
        """The first ``size`` rows and the rest."""
        return (
            Batch(self.lines[:size], self.raws[:size], self.records[:size]),
            Batch(self.lines[size:], self.raws[size:], self.records[size:]),
        )


@dataclass
class Chunk(Generic[Parsed]):
    """What the parser hands over: parsed rows, refused rows and how far it has read."""

    batch: Batch[Parsed]
    rejected: list[Rejected]
    rows_read: int
    bytes_read: int


class Importer(Protocol[Parsed]):
    """Turns rows into records and writes batches of them."""

    kind: str
    required: tuple[str, ...]

    def parse(self, row: Row) -> Parsed:
        """The row's record; raises :class:`RowError` to reject it."""
        ...

    async def write(
        self, session: AsyncSession, batch: Batch[Parsed], report: ImportReport
    ) -> list[tuple[int, str]]:
        """Write a batch inside ``session``'s transaction; returns (index, reason) refused."""
        ...


@runtime_checkable
class RunParser(Protocol[Parsed]):
    """An importer that parses a whole :class:`CsvRun` at once, faster than row by row."""

    def parse_run(self, run: CsvRun, batch: Batch[Parsed], rejected: list[Rejected]) -> None:
        """Append the run's records to ``batch`` and its refused rows to ``rejected``."""
        ...


Progress = Callable[[ImportReport, int], None]
"""Called with the report so far and the bytes read."""


def parse_chunks(
    importer: Importer[Parsed],
    rows: Iterable[Row | Rejected | CsvRun],
    bytes_read: Callable[[], int],
) -> Iterator[Chunk[Parsed]]:
    """Parse ``rows`` into chunks of about :data:`CHUNK_ROWS` (a run is not split)."""
    chunk: Chunk[Parsed] = Chunk(Batch(), [], 0, 0)
    parse = importer.parse
    parse_run = importer.parse_run if isinstance(importer, RunParser) else None
    lines, raws, records = chunk.batch.lines, chunk.batch.raws, chunk.batch.records
    for item in rows:
        if isinstance(item, Rejected):
            chunk.rows_read += 1
            chunk.rejected.append(item)
        elif isinstance(item, CsvRun) and parse_run is not None:
            chunk.rows_read += len(item)
            parse_run(item, chunk.batch, chunk.rejected)
        else:
            parsing = item.rows() if isinstance(item, CsvRun) else (item,)
            chunk.rows_read += len(item) if isinstance(item, CsvRun) else 1
            for row in parsing:
                try:
                    records.append(parse(row))
                except RowError as error:
                    chunk.rejected.append(Rejected(row.line, str(error), row.raw))
                else:
                    lines.append(row.line)
                    raws.append(row.raw)
        if chunk.rows_read >= CHUNK_ROWS:
            chunk.bytes_read = bytes_read()
            yield chunk
            chunk = Chunk(Batch(), [], 0, 0)
            lines, raws, records = chunk.batch.lines, chunk.batch.raws, chunk.batch.records
    chunk.bytes_read = bytes_read()
    yield chunk


async def run_import(
    store: Store,
    importer: Importer[Parsed],
    chunks: Iterable[Chunk[Parsed]] | ParseWorker[Parsed],
    rejects: RejectsFile,
    *,
    batch_size: int,
    source_name: str,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Write the parsed ``chunks`` in batches of ``batch_size``; bad rows go to ``rejects``."""
    report = ImportReport(kind=importer.kind, source=source_name, rejects_path=rejects.path)
    started = time.perf_counter()
    in_flight: asyncio.Task[None] | None = None

    async def write(batch: Batch[Parsed]) -> None:
        async with store.transaction() as session:
            refused = await importer.write(session, batch, report)
        for index, reason in refused:
            rejects.write(batch.lines[index], reason, batch.raws[index])
        report.rejected += len(refused)

    pending: Batch[Parsed] = Batch()
    collecting = gc.isenabled()
    # Batches are millions of short-lived tuples and no reference cycles; the cycle
    # collector would walk them over and over, holding the GIL the writer thread needs.
    # Anything cyclic made meanwhile is collected once the import ends.
    gc.disable()
    try:
        async for chunk in _chunks(chunks):
            report.read += chunk.rows_read
            report.rejected += len(chunk.rejected)
            for rejected in chunk.rejected:
                rejects.write(rejected.line, rejected.reason, rejected.raw)
            pending.extend(chunk.batch)
            while len(pending) >= batch_size:
                ready, pending = pending.split(batch_size)
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.create_task(write(ready))
            if on_progress is not None:
                on_progress(report, chunk.bytes_read)
        if in_flight is not None:
            await in_flight
            in_flight = None
        if len(pending):
            await write(pending)
    finally:
        if in_flight is not None:
            await asyncio.gather(in_flight, return_exceptions=True)
        rejects.close()
        if collecting:
            gc.enable()
    report.seconds = time.perf_counter() - started
    return report


async def _chunks(
    source: Iterable[Chunk[Parsed]] | ParseWorker[Parsed],
) -> AsyncIterator[Chunk[Parsed]]:
    if isinstance(source, ParseWorker):
        async for chunk in source:
            yield chunk
        return
    for chunk in source:
        yield chunk
        await asyncio.sleep(0)  # let the write in flight and the UI take their turn


@dataclass(frozen=True)
class SourceSpec:
    """How to open a :class:`RowSource` again in another process."""

    path: str
    format: Any
    mapping: dict[str, str]
    required: tuple[str, ...]
    max_field_bytes: int

    def open(self) -> RowSource:
        return RowSource(
            self.path,
            self.format,
            mapping=self.mapping,
            required=self.required,
            max_field_bytes=self.max_field_bytes,
        )


def _parse_in_worker(importer: Importer[Any], spec: SourceSpec, out: Any) -> None:
    """Worker process body: parse the file and send chunks; ``None`` ends, a str is an error."""
    # Parsing makes millions of short-lived lists and tuples and no reference cycles, so
    # the cycle collector would only walk them again and again (a third of the time).
    gc.disable()
    try:
        source = spec.open()
        try:
            for chunk in parse_chunks(importer, source, lambda: source.bytes_read):
                out.put(chunk)
        finally:
            source.close()
    except CadenceError as error:
        out.put(str(error))
        return
    out.put(None)


class ParseWorker(Generic[Parsed]):
    """Parses a file in a separate process and yields its chunks asynchronously."""

    def __init__(self, importer: Importer[Parsed], spec: SourceSpec) -> None:
        context = multiprocessing.get_context("spawn")
        self._queue: Any = context.Queue(maxsize=8)
        self._process = context.Process(
            target=_parse_in_worker, args=(importer, spec, self._queue), daemon=True
        )

    async def __aiter__(self) -> AsyncIterator[Chunk[Parsed]]:
        self._process.start()
        loop = asyncio.get_running_loop()
        try:
            while True:
                item = await loop.run_in_executor(None, self._next)
                if item is None:
                    return
                if isinstance(item, str):
                    raise CadenceError(item)
                yield item
        finally:
            if self._process.is_alive():
                self._process.kill()
            self._process.join()

    def _next(self) -> Any:
        while True:
            try:
                return self._queue.get(timeout=1)
            except queue.Empty:
                if not self._process.is_alive():
                    raise CadenceError(
                        f"the parser process stopped unexpectedly (exit code "
                        f"{self._process.exitcode}); re-run the import, it resumes safely"
                    ) from None
