"""``cadence import events``: append events, each stored once however often it arrives.

This is the hot path of ingest (a million rows should take seconds), so
:meth:`EventImporter.parse_run` reads plain CSV a column at a time with C-level
loops and remembers what it learnt about repeated values (customer ids, types,
amounts, properties); :meth:`EventImporter.parse` takes a single row's common
case in a few cheap steps. Both fall back to the careful field parsers, with
their messages, only when a value needs them.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from hashlib import blake2b
from itertools import repeat
from operator import floordiv, sub
from typing import Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.bulk import EventRow, store_events
from core.db.dialect import backend_of, upsert
from core.db.types import EPOCH, epoch_micros
from core.ingest import fields
from core.ingest.report import ImportReport
from core.ingest.runner import Batch
from core.ingest.source import CsvRun, Rejected, Row, RowError, size_limit
from core.models import Customer
from core.privacy import erased_customers

_KNOWN = frozenset(
    {"customer_id", "type", "occurred_at", "value", "source", "idempotency_key", "properties"}
)
_SIMPLE_ID = re.compile(r"[^\s\x00](?:[^\r\n\x00]{0,253}[^\s\x00])?")
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_quote: Callable[[str], str] = json.encoder.encode_basestring  # what _JSON does to a string
_MICROSECOND = timedelta(microseconds=1)
_NO_OFFSET = timedelta(0)
_EPOCH_UTC = EPOCH.replace(tzinfo=UTC)
_MAX_VALUE = 1e14
_CAREFUL = object()
"""A value the careful path must read (it also words the error, if there is one)."""

# customer external id, type, occurred_at (epoch microseconds, UTC), value, properties JSON,
# source, idempotency key, dedupe key
ParsedEvent = tuple[str, str, int, float | None, str | None, str, str | None, int]


def dedupe_key(*parts: str) -> int:
    """A signed 64-bit hash of ``parts``: unique together with the event's time."""
    return int.from_bytes(_digest("\x1f".join(parts)), "big", signed=True)


def _digest(text: str) -> bytes:
    return blake2b(text.encode(), digest_size=8).digest()


def _dedupe_keys(texts: Iterable[str], count: int) -> tuple[int, ...]:
    """:func:`dedupe_key` of many joined ``parts`` at once."""
    return struct.unpack(f">{count}q", b"".join(map(_digest, texts)))


def properties_document(properties: dict[str, Any]) -> str:
    """An event's properties as stored: compact JSON with sorted keys."""
    return _JSON.encode(properties)


Key = TypeVar("Key")
Value = TypeVar("Value")


class _Memo(dict[Key, Value], Generic[Key, Value]):
    """``compute`` of each key, worked out once: looked up with ``map(memo.__getitem__, ...)``,
    a column whose values repeat costs a dict lookup a row. Cleared when it grows large."""

    LIMIT = 100_000

    def __init__(self, compute: Callable[[Key], Value]) -> None:
        super().__init__()
        self._compute = compute

    def __missing__(self, key: Key) -> Value:
        if len(self) >= self.LIMIT:
            self.clear()
        value = self[key] = self._compute(key)
        return value


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

    def __init__(self, columns: tuple[str, ...], max_bytes: int) -> None:
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
        self.simple_id = _Memo[str, bool](lambda text: _SIMPLE_ID.fullmatch(text) is not None)
        self.simple_type = _Memo[str, bool](lambda text: _EVENT_TYPE.fullmatch(text) is not None)
        self.value_of = _Memo[str, object](_value)
        self.document_of = _Memo[tuple[str, ...], object](
            lambda values: _document(self.extras, values, max_bytes)
        )

    def needs_careful_path(self, values: list[str]) -> bool:
        return any(values[index] for index in self.careful)


def _value(text: str) -> float | object | None:
    """A plain ``value`` (empty: none), or :data:`_CAREFUL`."""
    try:
        value = float(text) if text else None
    except ValueError:
        return _CAREFUL
    return _CAREFUL if value is not None and not (-_MAX_VALUE < value < _MAX_VALUE) else value


def _document(extras: list[tuple[str, int]], values: tuple[str, ...], max_bytes: int) -> object:
    """The properties JSON of the extra columns' ``values`` (none given: None), or
    :data:`_CAREFUL`; keys in sorted order, as :data:`_JSON` writes them."""
    parts = [
        f"{prefix}{_quote(value)}"
        for (prefix, _), value in zip(extras, values, strict=True)
        if value
    ]
    document = "{" + ",".join(parts) + "}" if parts else None
    if document is not None and ("\\u0000" in document or len(document) * 4 > max_bytes):
        return _CAREFUL
    return document


class EventImporter:
    """Rows with ``customer_id``, ``type``, ``occurred_at`` and optional ``value``,
    ``source``, ``idempotency_key`` and ``properties``; other columns become properties."""

    kind = "events"
    required: tuple[str, ...] = ("customer_id", "type", "occurred_at")

    def __init__(
        self,
        zone: ZoneInfo,
        now: datetime,
        source: str,
        max_bytes: int,
        *,
        unknown_customers: Literal["reject", "create"] = "reject",
        keep_ids: bool = False,
    ) -> None:
        self.zone = zone
        self.now = now
        self.default_source = source
        self.max_bytes = max_bytes
        self.unknown_customers = unknown_customers
        """``create``: an event of an unknown customer registers them (now) instead."""
        self.keep_ids = keep_ids
        self.stored_ids: list[int] = []
        """With ``keep_ids``: the ids of the events this importer stored (not the repeats)."""
        self.stored_customer_ids: list[int] = []
        """With ``keep_ids``: the customer of each of ``stored_ids``, in the same order."""
        self.created_customers: set[str] = set()
        """The external ids of the customers this importer created (``unknown_customers``)."""
        self.erased_customers: set[str] = set()
        """The external ids of erased customers whose events this importer did not store."""
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
        if not key:
            return self.record(customer, kind, at, value, document, source)
        return (customer, kind, at, value, document, source, key, dedupe_key("key", key))

    def record(
        self,
        customer: str,
        kind: str,
        at: int,
        value: float | None,
        document: str | None,
        source: str | None = None,
    ) -> ParsedEvent:
        """The record of an event without an idempotency key whose fields are typed and
        valid already (``at`` in epoch microseconds, UTC; ``document`` as
        :func:`properties_document` writes it): what :meth:`parse` makes of its row, without
        writing the fields out as text to read them back (generated demo data)."""
        dedupe = dedupe_key(customer, kind, str(at), repr(value), document or "")
        return (customer, kind, at, value, document, source or self.default_source, None, dedupe)

    def _layout(self, columns: tuple[str, ...]) -> _CsvLayout:
        if self._csv_layout is None or self._csv_layout.columns is not columns:
            self._csv_layout = _CsvLayout(columns, self.max_bytes)
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
            at = self._epoch_micros(datetime.fromisoformat(values[layout.occurred_at]))
        except ValueError:
            return None
        value = layout.value_of[values[layout.value]] if layout.value is not None else None
        document = layout.document_of[tuple(values[i] for _, i in layout.extras)]
        if value is _CAREFUL or document is _CAREFUL:
            return None
        assert value is None or isinstance(value, float)
        assert document is None or isinstance(document, str)
        return self.record(customer, kind, at, value, document)

    def _epoch_micros(self, moment: datetime) -> int:
        """``occurred_at`` as stored; a time written without an offset is in the program's zone."""
        if moment.tzinfo is not None:
            return (moment - _EPOCH_UTC) // _MICROSECOND
        offset = self.zone.utcoffset(moment) or _NO_OFFSET
        return (moment - offset - EPOCH) // _MICROSECOND

    def parse_run(self, run: CsvRun, batch: Batch[ParsedEvent], rejected: list[Rejected]) -> None:
        """A run of plain CSV a column at a time; if any value needs the careful path,
        the run goes row by row instead."""
        layout = self._layout(run.columns)
        records = self._parse_columns(list(zip(*run.values, strict=True)), layout, len(run))
        if records is None:
            for row in run.rows():
                try:
                    record = self.parse(row)
                except RowError as error:
                    rejected.append(Rejected(row.line, str(error), row.raw))
                else:
                    batch.records.append(record)
                    batch.lines.append(row.line)
                    batch.raws.append(row.raw)
            return
        batch.records.extend(records)
        batch.lines.extend(range(run.first, run.first + len(run)))
        batch.raws.extend(run.raws)

    def _parse_columns(
        self, columns: list[tuple[str, ...]], layout: _CsvLayout, count: int
    ) -> list[ParsedEvent] | None:
        """The records of a run given as columns, or None when a value needs the careful path."""
        customers, kinds = columns[layout.customer], columns[layout.type]
        if any(any(columns[index]) for index in layout.careful) or not (
            all(map(layout.simple_id.__getitem__, customers))
            and all(map(layout.simple_type.__getitem__, kinds))
        ):
            return None
        values: list[Any] = (
            list(map(layout.value_of.__getitem__, columns[layout.value]))
            if layout.value is not None
            else [None] * count
        )
        documents: list[Any] = list(
            map(
                layout.document_of.__getitem__,
                zip(*(columns[i] for _, i in layout.extras), strict=True),
            )
            if layout.extras
            else [None] * count
        )
        if _CAREFUL in values or _CAREFUL in documents:
            return None
        try:
            moments = list(map(datetime.fromisoformat, columns[layout.occurred_at]))
        except ValueError:
            return None
        try:
            times = list(map(floordiv, map(sub, moments, repeat(_EPOCH_UTC)), repeat(_MICROSECOND)))
        except TypeError:  # some times have no offset: read those in the program's zone
            times = list(map(self._epoch_micros, moments))
        keyed = [document or "" for document in documents]
        keys = _dedupe_keys(
            map(
                "\x1f".join,
                zip(customers, kinds, map(str, times), map(repr, values), keyed, strict=True),
            ),
            count,
        )
        return list(
            zip(
                customers,
                kinds,
                times,
                values,
                documents,
                repeat(self.default_source),
                repeat(None),
                keys,
            )
        )

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
        document = properties_document(properties)
        if len(document) * 4 > self.max_bytes and len(document.encode()) > self.max_bytes:
            raise RowError(f"`properties` are larger than {size_limit(self.max_bytes)}")
        return document

    async def write(
        self, session: AsyncSession, batch: Batch[ParsedEvent], report: ImportReport
    ) -> list[tuple[int, str]]:
        records = batch.records
        if not records:
            return []
        external_ids, *fields_after = zip(*records, strict=True)
        ids = await self.customers.resolve(session, set(external_ids))
        row_ids = list(map(ids.get, external_ids))
        if None in row_ids:
            unknown = {e for e, row_id in zip(external_ids, row_ids, strict=True) if row_id is None}
            erased = await erased_customers(session, ((e, None, None) for e in unknown))
            self.erased_customers |= erased
            if self.unknown_customers == "create" and unknown - erased:
                created = unknown - erased
                report.customers_created += await register_customers(session, created, self.now)
                self.created_customers |= created
                ids = await self.customers.resolve(session, created)
                row_ids = list(map(ids.get, external_ids))
        refused: list[tuple[int, str]] = []
        if None in row_ids:
            rows: list[EventRow] = []
            for index, (customer, row_id, record) in enumerate(
                zip(external_ids, row_ids, records, strict=True)
            ):
                if row_id is not None:
                    rows.append((row_id, *record[1:]))
                elif customer in self.erased_customers:
                    report.erased += 1
                else:
                    reason = f"unknown customer `{customer}`; import the customer first"
                    refused.append((index, reason))
        else:  # the common case, in C-level loops
            rows = list(zip(row_ids, *fields_after, strict=True))
        stored = await store_events(session, rows, self.now, with_ids=self.keep_ids)
        self.stored_ids.extend(stored.ids)
        self.stored_customer_ids.extend(stored.customer_ids)
        report.inserted += stored.inserted
        report.unchanged += len(rows) - stored.inserted
        report.held += stored.held
        return refused


async def register_customers(session: AsyncSession, external_ids: set[str], now: datetime) -> int:
    """Create the customers ``external_ids`` names that do not exist yet, registered ``now``
    with nothing else known; how many were created."""
    rows = [
        {
            "external_id": external_id,
            "registered_at": now,
            "attributes": {},
            "created_at": now,
            "updated_at": now,
        }
        for external_id in sorted(external_ids)
    ]
    if not rows:
        return 0
    statement = upsert(backend_of(session), Customer.__table__).on_conflict_do_nothing(
        index_elements=["external_id"]
    )
    result = await session.execute(statement.returning(Customer.id), rows)
    return len(result.all())
