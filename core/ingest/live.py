"""Events arriving in small batches (``POST /v1/events``, ``cadence ingest -``): each one
checked on its own, the valid ones stored idempotently with their rollups, and the event
triggers fired for the new ones, all in one transaction.

Validation and storage are the file import's (:class:`~core.ingest.events.EventImporter`);
only the new events fire, so a batch delivered twice fires its triggers once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.db import Store
from core.db.types import epoch_micros
from core.ingest.events import EventImporter, ParsedEvent
from core.ingest.report import ImportReport
from core.ingest.runner import Batch
from core.ingest.source import Rejected, Row, RowError
from core.planner.runs import PlannedRun
from core.policy import Outcome
from core.program import Program
from core.settings import Settings
from core.triggers import fire_event_triggers_in

INVALID = 422
"""The status of an event that is not valid as sent."""
UNKNOWN_CUSTOMER = 404
"""The status of an event of a customer Cadence does not know (``ingest.unknown_customers``
is ``reject``)."""


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


async def ingest_events(
    store: Store,
    program: Program,
    settings: Settings,
    items: Sequence[Row | Rejected],
    now: datetime,
    *,
    source: str,
) -> LiveReport:
    """Check, store and fire one batch; ``items`` are rows, or inputs already refused as
    unreadable (bad JSON), kept so that the report names them."""
    importer = EventImporter(
        settings.zone,
        now,
        source,
        settings.imports.max_field_bytes,
        unknown_customers=settings.ingest.unknown_customers,
        keep_ids=True,
    )
    report = LiveReport(received=len(items))
    batch: Batch[ParsedEvent] = Batch()
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
        batch.records.append(record)
        batch.lines.append(item.line)
        batch.raws.append("")
    counts = ImportReport(kind="events", source=source)
    async with store.transaction() as session:
        refused = await importer.write(session, batch, counts)
        report.runs = await fire_event_triggers_in(
            session, program, settings, importer.stored_ids, now
        )
    report.refused.extend(
        RefusedEvent(batch.lines[index], UNKNOWN_CUSTOMER, reason) for index, reason in refused
    )
    report.stored, report.repeated = counts.inserted, counts.unchanged
    report.customers_created = counts.customers_created
    return report
