"""Events arriving in small batches (``POST /v1/events``, ``cadence ingest -``): each one
checked on its own, the valid ones stored idempotently with their rollups, and the event
triggers fired for the new ones, all in one transaction.

Validation and storage are the file import's (:class:`~core.ingest.events.EventImporter`);
only the new events fire, so a batch delivered twice fires its triggers once.

:class:`GroupCommit` lets concurrent batches share that transaction: under load the
HTTP API commits once for every request that arrived while the previous commit ran,
so the cost of a commit and of planning a trigger's run is paid per group, not per
request, and throughput grows with the load instead of a queue forming.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core import clock
from core.db import Store
from core.db.types import epoch_micros
from core.ingest.events import EventImporter, ParsedEvent
from core.ingest.report import ImportReport
from core.ingest.runner import Batch
from core.ingest.source import Rejected, Row, RowError
from core.metrics import TRIGGER_LATENCY
from core.planner.runs import PlannedRun
from core.policy import Outcome
from core.privacy import erased_reason
from core.program import Program
from core.settings import Settings
from core.triggers import fire_event_triggers_in

INVALID = 422
"""The status of an event that is not valid as sent."""
UNKNOWN_CUSTOMER = 404
"""The status of an event of a customer Cadence does not know (``ingest.unknown_customers``
is ``reject``) or no longer knows (they were erased)."""


@dataclass(frozen=True)
class RefusedEvent:
    """An event not stored: where it was in the input (index or line), a 4xx status, why."""

    position: int
    status: int
    reason: str


@dataclass
class LiveReport:
    """What one batch did."""

    received: int = 0
    stored: int = 0
    repeated: int = 0
    """Valid events stored before (same idempotency key, or same content and time)."""
    customers_created: int = 0
    refused: list[RefusedEvent] = field(default_factory=list)
    runs: list[PlannedRun] = field(default_factory=list)

    def as_dict(self, position: str = "index") -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": self.stored + self.repeated,
            "stored": self.stored,
            "repeated": self.repeated,
            "customers_created": self.customers_created,
            "rejected": [
                {position: r.position, "status": r.status, "reason": r.reason}
                for r in sorted(self.refused, key=lambda refused: refused.position)
            ],
            "triggered": [
                {
                    "campaign": run.plan.campaign,
                    "run": run.run_key,
                    "targeted": run.plan.targeted,
                    "queued": run.plan.count(Outcome.QUEUED),
                }
                for run in self.runs
            ],
        }


@dataclass(frozen=True)
class CheckedBatch:
    """A batch as checked on arrival: the events fit to store, and its report so far (the
    events refused as sent); ``received`` is when it arrived (``time.perf_counter()``)."""

    events: Batch[ParsedEvent]
    report: LiveReport
    received: float


def check_events(
    settings: Settings, items: Sequence[Row | Rejected], now: datetime, *, source: str
) -> CheckedBatch:
    """Check every event of a batch on its own; ``items`` are rows, or inputs already
    refused as unreadable (bad JSON), kept so that the report names them."""
    received = time.perf_counter()
    importer = _importer(settings, now, source)
    report = LiveReport(received=len(items))
    events: Batch[ParsedEvent] = Batch()
    future = timedelta(minutes=settings.ingest.max_future_minutes)
    latest = epoch_micros((now + future).astimezone(UTC).replace(tzinfo=None))
    for item in items:
        if isinstance(item, Rejected):
            report.refused.append(RefusedEvent(item.line, INVALID, item.reason))
            continue
        try:
            record = importer.parse(item)
        except RowError as error:
            report.refused.append(RefusedEvent(item.line, INVALID, str(error)))
            continue
        if record[2] > latest:
            reason = (
                f"`occurred_at` is more than {settings.ingest.max_future_minutes:g} minutes "
                "ahead of the server's clock; check the sender's clock"
            )
            report.refused.append(RefusedEvent(item.line, INVALID, reason))
            continue
        events.records.append(record)
        events.lines.append(item.line)
        events.raws.append("")
    return CheckedBatch(events, report, received)


async def store_checked(
    store: Store,
    program: Program,
    settings: Settings,
    batches: Sequence[CheckedBatch],
    now: datetime,
    *,
    source: str,
) -> list[LiveReport]:
    """Store checked batches and fire their triggers, all in one transaction and one
    statement of each kind; each batch's report, with the runs its own events caused.

    No two of ``batches`` may name one customer: what was stored, created or refused is
    told to the batch that names its customer.
    """
    owner: dict[str, int] = {}
    for position, batch in enumerate(batches):
        for record in batch.events.records:
            assert owner.setdefault(record[0], position) == position, "batches share a customer"
    events: Batch[ParsedEvent] = Batch()
    for batch in batches:
        events.extend(batch.events)
    importer = _importer(settings, now, source)
    async with store.transaction() as session:
        refused = await importer.write(session, events, ImportReport(kind="events", source=source))
        runs = await fire_event_triggers_in(session, program, settings, importer.stored_ids, now)
        row_ids = await importer.customers.resolve(session, ())  # the write looked them up
    committed = time.perf_counter()
    owner_of_row = {row_ids[name]: position for name, position in owner.items() if name in row_ids}
    stored: list[set[int]] = [set() for _ in batches]
    for event_id, customer_id in zip(
        importer.stored_ids, importer.stored_customer_ids, strict=True
    ):
        stored[owner_of_row[customer_id]].add(event_id)
    # Events of erased customers are not stored; the sender is told so, like for unknown ones.
    refused += [
        (index, erased_reason(record[0]))
        for index, record in enumerate(events.records)
        if record[0] in importer.erased_customers
    ]
    for index, reason in refused:
        position = owner[events.records[index][0]]
        line = events.lines[index]
        batches[position].report.refused.append(RefusedEvent(line, UNKNOWN_CUSTOMER, reason))
    created = Counter(owner[name] for name in importer.created_customers)
    refused_in = Counter(owner[events.records[index][0]] for index, _ in refused)
    reports = []
    for position, batch in enumerate(batches):
        report = batch.report
        report.stored = len(stored[position])
        report.repeated = len(batch.events) - refused_in[position] - report.stored
        report.customers_created = created[position]
        report.runs = [run for run in runs if not run.event_ids.isdisjoint(stored[position])]
        TRIGGER_LATENCY.observe(committed - batch.received)
        reports.append(report)
    return reports


async def ingest_events(
    store: Store,
    program: Program,
    settings: Settings,
    items: Sequence[Row | Rejected],
    now: datetime,
    *,
    source: str,
) -> LiveReport:
    """Check, store and fire one batch in a transaction of its own."""
    checked = check_events(settings, items, now, source=source)
    [report] = await store_checked(store, program, settings, [checked], now, source=source)
    return report


class GroupCommit:
    """Ingest for concurrent callers: each waits while the batches that arrived before it
    are stored, then the waiting batches go in one transaction (in order, up to
    ``ingest.max_batch_events`` events and the first batch that names a customer again).

    A group that fails is retried one batch at a time, so a batch that cannot be stored
    fails alone and the others are stored.
    """

    def __init__(
        self, store: Store, settings: Settings, program: Callable[[], Program], *, source: str
    ) -> None:
        self._store = store
        self._settings = settings
        self._program = program
        self._source = source
        self._waiting: list[tuple[CheckedBatch, asyncio.Future[LiveReport]]] = []
        self._storing: asyncio.Task[None] | None = None

    async def ingest(self, items: Sequence[Row | Rejected], now: datetime) -> LiveReport:
        """Check ``items`` now, and store them with the group they join."""
        checked = check_events(self._settings, items, now, source=self._source)
        if not checked.events.records:
            return checked.report
        answer: asyncio.Future[LiveReport] = asyncio.get_running_loop().create_future()
        self._waiting.append((checked, answer))
        if self._storing is None or self._storing.done():
            self._storing = asyncio.create_task(self._store_waiting())
        return await answer

    async def _store_waiting(self) -> None:
        while self._waiting:
            group = self._next_group()
            try:
                outcomes: list[LiveReport | Exception] = list(
                    await self._write([batch for batch, _ in group])
                )
            except Exception:
                outcomes = [await self._store_alone(batch) for batch, _ in group]
            for (_, answer), outcome in zip(group, outcomes, strict=True):
                if answer.done():  # the caller gave up waiting; the events are stored
                    continue
                if isinstance(outcome, Exception):
                    answer.set_exception(outcome)
                else:
                    answer.set_result(outcome)

    def _next_group(self) -> list[tuple[CheckedBatch, asyncio.Future[LiveReport]]]:
        # Triggers plan one run for a group, and a run messages a customer once: a group
        # never joins two batches of one customer, so each batch fires as it would alone
        # (two purchases sent apart get two receipts).
        limit = self._settings.ingest.max_batch_events
        taken, events, customers = 0, 0, set[str]()
        for batch, _ in self._waiting:
            mentioned = {record[0] for record in batch.events.records}
            if taken and (
                events + len(batch.events) > limit or not customers.isdisjoint(mentioned)
            ):
                break
            taken, events = taken + 1, events + len(batch.events)
            customers |= mentioned
        group, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return group

    async def _write(self, batches: Sequence[CheckedBatch]) -> list[LiveReport]:
        return await store_checked(
            self._store, self._program(), self._settings, batches, clock.now(), source=self._source
        )

    async def _store_alone(self, batch: CheckedBatch) -> LiveReport | Exception:
        try:
            [report] = await self._write([batch])
        except Exception as error:
            return error
        return report


def _importer(settings: Settings, now: datetime, source: str) -> EventImporter:
    return EventImporter(
        settings.zone,
        now,
        source,
        settings.imports.max_field_bytes,
        unknown_customers=settings.ingest.unknown_customers,
        keep_ids=True,
    )
