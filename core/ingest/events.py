"""``cadence import events``: append events, each stored once however often it arrives."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from hashlib import blake2b
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.bulk import EventRow, store_events
from core.ingest import fields
from core.ingest.report import ImportReport
from core.ingest.runner import BatchItem
from core.ingest.source import Row, RowError
from core.models import Customer

_KNOWN = frozenset(
    {"customer_id", "type", "occurred_at", "value", "source", "idempotency_key", "properties"}
)

# customer external id, type, occurred_at, value, properties JSON, source, idempotency key, dedupe
ParsedEvent = tuple[str, str, datetime, float | None, str | None, str, str | None, int]


def dedupe_key(*parts: str) -> int:
    """A signed 64-bit hash of ``parts``: unique together with the event's time."""
    digest = blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def canonical_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
            self._ids.update(found.tuples().all())
        return self._ids


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

    def parse(self, row: Row) -> ParsedEvent:
        f = row.fields
        customer = fields.text(f.get("customer_id"), "customer_id", max_length=255, required=True)
        kind = fields.event_type(f.get("type"))
        at = fields.moment(f.get("occurred_at"), "occurred_at", self.zone, required=True)
        value = fields.number(f.get("value"), "value")
        source = fields.text(f.get("source"), "source", max_length=64) or self.default_source
        key = fields.text(f.get("idempotency_key"), "idempotency_key", max_length=255)
        properties = dict(fields.json_object(f.get("properties"), "properties") or {})
        properties.update(
            (name, item) for name, item in f.items() if name not in _KNOWN and fields.given(item)
        )
        document = canonical_json(properties) if properties else None
        if document is not None and len(document) > self.max_bytes:
            raise RowError(f"`properties` are larger than {self.max_bytes // 1024} KiB")
        assert customer is not None and at is not None
        stamp = at.isoformat()
        dedupe = (
            dedupe_key("key", key)
            if key
            else dedupe_key(customer, kind, stamp, repr(value), document or "")
        )
        return (customer, kind, at, value, document, source, key, dedupe)

    async def write(
        self, session: AsyncSession, batch: list[BatchItem[ParsedEvent]], report: ImportReport
    ) -> list[tuple[BatchItem[ParsedEvent], str]]:
        ids = await self.customers.resolve(session, (item.record[0] for item in batch))
        rows: list[EventRow] = []
        refused: list[tuple[BatchItem[ParsedEvent], str]] = []
        for item in batch:
            customer, kind, at, value, document, source, key, dedupe = item.record
            customer_id = ids.get(customer)
            if customer_id is None:
                refused.append((item, f"unknown customer `{customer}`; import the customer first"))
            else:
                rows.append((customer_id, kind, at, value, document, source, key, dedupe))
        stored = await store_events(session, rows, self.now)
        report.inserted += stored.inserted
        report.unchanged += len(rows) - stored.inserted
        report.held += stored.held
        return refused
