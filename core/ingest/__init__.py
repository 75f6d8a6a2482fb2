"""Customers and events in: CSV and JSONL files or standard input.

Every importer follows the same contract: bad rows are written to a rejects
file with their line number and reason while the good rows are imported,
and importing the same input twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from core import clock
from core.audit import record_action
from core.db import Store
from core.errors import CadenceError
from core.ingest.customers import CustomerImporter
from core.ingest.events import EventImporter
from core.ingest.report import ImportReport, RejectsFile
from core.ingest.runner import (
    Importer,
    ParseWorker,
    Progress,
    SourceSpec,
    parse_chunks,
    run_import,
)
from core.ingest.source import STDIN, Format, format_of
from core.ingest.transactions import TransactionImporter
from core.rollups import roll_up_due_events
from core.settings import Settings

Kind = Literal["customers", "events", "transactions"]

__all__ = ["ImportReport", "Kind", "default_rejects_path", "import_file"]


def default_rejects_path(path: str) -> Path:
    """``FILE.rejects.jsonl`` next to the input; for standard input, in the working directory."""
    return Path("stdin.rejects.jsonl") if path == STDIN else Path(f"{path}.rejects.jsonl")


def _importer(kind: Kind, settings: Settings, source_name: str) -> Importer[Any]:
    now, zone = clock.now(), settings.zone
    if kind == "customers":
        return CustomerImporter(zone, now)
    if kind == "events":
        return EventImporter(zone, now, source_name, settings.imports.max_field_bytes)
    return TransactionImporter(zone, now, source_name)


async def import_file(
    store: Store,
    settings: Settings,
    kind: Kind,
    path: str,
    *,
    fmt: Format | None = None,
    mapping: Mapping[str, str] | None = None,
    rejects_path: Path | None = None,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Import ``path`` (or ``-`` for JSONL on standard input) and record it in the audit log."""
    file_format = "csv" if kind == "transactions" and fmt is None and path != STDIN else fmt
    importer = _importer(kind, settings, "import" if path == STDIN else f"import:{Path(path).name}")
    spec = SourceSpec(
        path,
        format_of(path, file_format),
        dict(mapping or {}),
        importer.required,
        settings.imports.max_field_bytes,
    )
    async with store.transaction() as session:
        await roll_up_due_events(session, clock.now())
    rejects = RejectsFile(rejects_path or default_rejects_path(path))
    options: dict[str, Any] = {
        "batch_size": settings.imports.batch_size,
        "source_name": path,
        "on_progress": on_progress,
    }
    if path != STDIN and input_size(path) >= settings.imports.parallel_parse_min_bytes:
        report = await run_import(store, importer, ParseWorker(importer, spec), rejects, **options)
    else:
        source = spec.open()
        try:
            chunks = parse_chunks(importer, source, lambda: source.bytes_read)
            report = await run_import(store, importer, chunks, rejects, **options)
        finally:
            source.close()
    async with store.transaction() as session:
        record_action(session, f"import.{kind}", path, report.as_dict())
    return report


def input_size(path: str) -> int:
    """The size of an input file in bytes; a missing file is a clear error."""
    try:
        return Path(path).stat().st_size
    except OSError as exc:
        raise CadenceError(f"{path}: cannot open: {exc.strerror}") from None
