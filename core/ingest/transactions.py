"""``cadence import transactions``: plain purchase files (``customer_id,date,quantity,amount``).

Each row becomes a ``purchase`` event worth ``amount``. Customers are
created as needed, registered at their first transaction, unless they were
erased (see :mod:`core.privacy`). Two identical rows in one file are two
purchases (files often carry dates, not times), so a row's identity includes
how many identical rows came before it; importing the file again still
changes nothing.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from core import event_types
from core.db.bulk import EventRow, store_events
from core.db.dialect import backend_of, least, upsert
from core.db.types import epoch_micros
from core.ingest import fields
from core.ingest.events import CustomerDirectory, dedupe_key
from core.ingest.report import ImportReport
from core.ingest.runner import Batch
from core.ingest.source import Row, RowError
from core.models import Customer
from core.privacy import erased_customers

_CUSTOMERS = Customer.__table__

# customer external id, date (naive UTC), quantity, amount, dedupe key
ParsedTransaction = tuple[str, datetime, int, float, int]


class TransactionImporter:
    kind = "transactions"
    required: tuple[str, ...] = ("customer_id", "date", "quantity", "amount")

    def __init__(self, zone: ZoneInfo, now: datetime, source: str) -> None:
        self.zone = zone
        self.now = now
        self.source = source
        self.customers = CustomerDirectory()
        self._seen: Counter[tuple[str, str, int, float]] = Counter()

    def parse(self, row: Row) -> ParsedTransaction:
        f = row.fields
        customer = fields.text(f.get("customer_id"), "customer_id", max_length=255, required=True)
        at = fields.moment(f.get("date"), "date", self.zone, required=True)
        quantity = fields.whole_number(f.get("quantity"), "quantity", required=True)
        amount = fields.number(f.get("amount"), "amount", required=True)
        assert customer is not None and at is not None
        assert quantity is not None and amount is not None
        if quantity < 0:
            raise RowError("`quantity` must not be negative")
        identity = (customer, at.isoformat(), quantity, amount)
        occurrence = self._seen[identity]
        self._seen[identity] += 1
        key = dedupe_key("tx", *map(str, identity), str(occurrence))
        return (customer, at, quantity, amount, key)

    async def write(
        self, session: AsyncSession, batch: Batch[ParsedTransaction], report: ImportReport
    ) -> list[tuple[int, str]]:
        first: dict[str, datetime] = {}
        for customer, at, *_ in batch.records:
            if customer not in first or at < first[customer]:
                first[customer] = at
        known = await self.customers.resolve(session, first)
        unknown = [customer for customer in first if customer not in known]
        erased = await erased_customers(session, ((customer, None, None) for customer in unknown))
        records = [record for record in batch.records if record[0] not in erased]
        report.erased += len(batch) - len(records)
        for customer in erased:
            del first[customer]
        report.customers_created += len(unknown) - len(erased)
        if first:
            await self._register(session, first)
        ids = await self.customers.resolve(session, first)
        rows: list[EventRow] = [
            (
                ids[customer],
                event_types.PURCHASE,
                epoch_micros(at),
                amount,
                f'{{"quantity":{quantity}}}',
                self.source,
                None,
                key,
            )
            for customer, at, quantity, amount, key in records
        ]
        stored = await store_events(session, rows, self.now)
        report.inserted += stored.inserted
        report.unchanged += len(rows) - stored.inserted
        report.held += stored.held
        return []

    async def _register(self, session: AsyncSession, first: dict[str, datetime]) -> None:
        """Create missing customers; move a registration back to an earlier first purchase."""
        backend = backend_of(session)
        statement = upsert(backend, _CUSTOMERS)
        registered = _CUSTOMERS.c.registered_at
        rows: list[dict[str, Any]] = [
            {
                "external_id": customer,
                "registered_at": at,
                "attributes": {},
                "created_at": self.now,
                "updated_at": self.now,
            }
            for customer, at in first.items()
        ]
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["external_id"],
                set_={
                    "registered_at": least(backend, registered, statement.excluded.registered_at),
                    "updated_at": statement.excluded.updated_at,
                },
                where=statement.excluded.registered_at < registered,
            ),
            rows,
        )
