"""``cadence import events``: append events, each stored once however often it arrives.

This is the hot path of ingest (a million rows should take seconds), so
:meth:`EventImporter.parse` takes the common case in a few cheap steps and
falls back to the careful field parsers, with their messages, only when a
value needs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from hashlib import blake2b
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.bulk import EventRow, store_events
from core.db.types import EPOCH, epoch_micros
from core.ingest import fields
from core.ingest.report import ImportReport
from core.ingest.runner import Batch
from core.ingest.source import Row, RowError
from core.models import Customer

_KNOWN = frozenset(
    {"customer_id", "type", "occurred_at", "value", "source", "idempotency_key", "properties"}
)
_SIMPLE_ID = re.compile(r"[^\s\x00](?:[^\r\n\x00]{0,253}[^\s\x00])?")
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_quote: Callable[[str], str] = json.encoder.encode_basestring  # what _JSON does to a string
_MICROSECOND = timedelta(microseconds=1)
_NO_OFFSET = timedelta(0)
_MAX_VALUE = 1e14

# customer external id, type, occurred_at (epoch microseconds, UTC), value, properties JSON,
# source, idempotency key, dedupe key
ParsedEvent = tuple[str, str, int, float | None, str | None, str, str | None, int]


def dedupe_key(*parts: str) -> int:
    """A signed 64-bit hash of ``parts``: unique together with the event's time."""
    digest = blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class CustomerDirectory:
    """External ids to row ids, cached across batches of one import."""

    LOOKUP_CHUNK = 500
    MAX_CACHED = 2_000_000

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    async def resolve(self, session: AsyncSession, external_ids: Iterable[str]) -> dict[str, int]:
        """The row ids of those of ``external_ids`` that exist (and of earlier lookups)."""
        missing = sorted({e for e in external_ids if e not in self._ids})
        if len(self._ids) + len(missing) > self.MAX_CACHED:
            self._ids.clear()
        for start in range(0, len(missing), self.LOOKUP_CHUNK):
            chunk = missing[start : start + self.LOOKUP_CHUNK]
            found = await session.execute(
                select(Customer.external_id, Customer.id).where(Customer.external_id.in_(chunk))
            )
            self._ids.update({external_id: row_id for external_id, row_id in found})
        return self._ids


class _CsvLayout:
    """Where each field sits in the rows of one CSV file, worked out once per file."""

    def __init__(self, columns: tuple[str, ...]) -> None:
        position = {name: index for index, name in enumerate(columns)}
        self.columns = columns
        self.customer = position["customer_id"]
        self.type = position["type"]
        self.occurred_at = position["occurred_at"]
        self.value = position.get("value")
        # Columns that, when filled in, send the row down the careful path.
        self.careful = [
            position[name]
            for name in ("source", "idempotency_key", "properties")
            if name in position
        ]
        self.extras = [
            (f"{_quote(name)}:", position[name]) for name in sorted(set(columns) - _KNOWN)
        ]

    def needs_careful_path(self, values: list[str]) -> bool:
        return any(values[index] for index in self.careful)


class EventImporter:
    """Rows with ``customer_id``, ``type``, ``occurred_at`` and optional ``value``,
    ``source``, ``idempotency_key`` and ``properties``; other columns become properties."""

    kind = "events"
    required: tuple[str, ...] = ("customer_id", "type", "occurred_at")

    def __init__(self, zone: ZoneInfo, now: datetime, source: str, max_bytes: int) -> None:
        self.zone = zone
        self.now = now
        self.default_source = source
        self.max_bytes = max_bytes
        self.customers = CustomerDirectory()
        self._csv_layout: _CsvLayout | None = None

    def parse(self, row: Row) -> ParsedEvent:
        if isinstance(row.data, list):
            parsed = self._parse_csv_values(row.data, self._layout(row.columns))
            if parsed is not None:
                return parsed
        f = row.fields
        customer = fields.text(f.get("customer_id"), "customer_id", max_length=255, required=True)
        assert customer is not None
        kind = fields.event_type(f.get("type"))
        moment = fields.moment(f.get("occurred_at"), "occurred_at", self.zone, required=True)
        assert moment is not None
        at = epoch_micros(moment)
        value = fields.number(f.get("value"), "value")
        source = fields.text(f.get("source"), "source", max_length=64) or self.default_source
        key = fields.text(f.get("idempotency_key"), "idempotency_key", max_length=255)
        document = self._properties(f)
        dedupe = (
            dedupe_key("key", key)
            if key
            else dedupe_key(customer, kind, str(at), repr(value), document or "")
        )
        return (customer, kind, at, value, document, source, key, dedupe)

    def _layout(self, columns: tuple[str, ...]) -> _CsvLayout:
        if self._csv_layout is None or self._csv_layout.columns is not columns:
            self._csv_layout = _CsvLayout(columns)
        return self._csv_layout

    def _parse_csv_values(self, values: list[str], layout: _CsvLayout) -> ParsedEvent | None:
        """The common case of a CSV row, in as few steps as possible; None when any value
        needs the careful path (which also words the error, if there is one)."""
        if layout.careful and layout.needs_careful_path(values):
            return None
        customer, kind = values[layout.customer], values[layout.type]
        if not (_SIMPLE_ID.fullmatch(customer) and _EVENT_TYPE.fullmatch(kind)):
            return None
        try:
            parsed = datetime.fromisoformat(values[layout.occurred_at])
            offset = parsed.utcoffset()
            if offset is None:  # no offset written: the time is in the program's zone
                offset = self.zone.utcoffset(parsed) or _NO_OFFSET
            at = (parsed.replace(tzinfo=None) - offset - EPOCH) // _MICROSECOND
            raw_value = values[layout.value] if layout.value is not None else ""
            value = float(raw_value) if raw_value else None
        except ValueError:
            return None
        if value is not None and not (-_MAX_VALUE < value < _MAX_VALUE):
            return None
        parts = [f"{prefix}{_quote(values[i])}" for prefix, i in layout.extras if values[i]]
        document = "{" + ",".join(parts) + "}" if parts else None
        if document is not None and ("\\u0000" in document or len(document) * 4 > self.max_bytes):
            return None
        dedupe = dedupe_key(customer, kind, str(at), repr(value), document or "")
        return (customer, kind, at, value, document, self.default_source, None, dedupe)

    def _properties(self, f: Any) -> str | None:
        extra = f.keys() - _KNOWN
        given = f.get("properties")
        if not extra and not given:
            return None
        properties = dict(fields.json_object(given, "properties") or {})
        for name in extra:
            item = f[name]
            if item is not None and item != "":
                properties[name] = item
        if not properties:
            return None
        fields.without_nul(properties, "properties")
        document = _JSON.encode(properties)
        if len(document) * 4 > self.max_bytes and len(document.encode()) > self.max_bytes:
            raise RowError(f"`properties` are larger than {self.max_bytes // 1024} KiB")
        return document

    async def write(
        self, session: AsyncSession, batch: Batch[ParsedEvent], report: ImportReport
    ) -> list[tuple[int, str]]:
        records = batch.records
        ids = await self.customers.resolve(session, {record[0] for record in records})
        rows: list[EventRow] = []
        refused: list[tuple[int, str]] = []
        for index, (customer, kind, at, value, document, source, key, dedupe) in enumerate(records):
            customer_id = ids.get(customer)
            if customer_id is None:
                refused.append((index, f"unknown customer `{customer}`; import the customer first"))
            else:
                rows.append((customer_id, kind, at, value, document, source, key, dedupe))
        stored = await store_events(session, rows, self.now)
        report.inserted += stored.inserted
        report.unchanged += len(rows) - stored.inserted
        report.held += stored.held
        return refused
