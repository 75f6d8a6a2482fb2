"""``cadence import customers``: insert or update customers by their external id.

A field that a row leaves empty keeps its stored value; ``attributes`` are
merged key by key. A row that changes nothing writes nothing, so importing
the same file twice leaves the store as it was. A new customer whose id, e-mail
address or phone number belonged to an erased customer is not imported (see
:mod:`core.privacy`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.dialect import backend_of, serialize_writers, upsert
from core.ingest import fields
from core.ingest.report import ImportReport
from core.ingest.runner import Batch
from core.ingest.source import Row
from core.models import Customer
from core.privacy import erased_customers

_CUSTOMERS = Customer.__table__
_PROFILE = (
    "email",
    "phone",
    "name",
    "locale",
    "time_zone",
    "birthday",
    "registered_at",
    "consent_email",
    "consent_sms",
    "consent_push",
)
_KNOWN = frozenset({"customer_id", "attributes", *_PROFILE})
_STORED = ("external_id", *_PROFILE, "attributes", "created_at", "updated_at")

ParsedCustomer = dict[str, Any]
"""``external_id``, the profile fields the row gives, and ``attributes``."""


class CustomerImporter:
    """Rows with ``customer_id`` and any profile fields; other columns become attributes."""

    kind = "customers"
    required: tuple[str, ...] = ("customer_id",)

    def __init__(self, zone: ZoneInfo, now: datetime) -> None:
        self.zone = zone
        self.now = now

    def parse(self, row: Row) -> ParsedCustomer:
        f = row.fields
        record: ParsedCustomer = {
            "external_id": fields.text(
                f.get("customer_id"), "customer_id", max_length=255, required=True
            ),
            "email": fields.email(f.get("email")),
            "phone": fields.phone(f.get("phone")),
            "name": fields.text(f.get("name"), "name", max_length=255),
            "locale": fields.locale(f.get("locale")),
            "time_zone": fields.time_zone(f.get("time_zone")),
            "birthday": fields.calendar_date(f.get("birthday"), "birthday"),
            "registered_at": _aware(
                fields.moment(f.get("registered_at"), "registered_at", self.zone)
            ),
            "consent_email": fields.flag(f.get("consent_email"), "consent_email"),
            "consent_sms": fields.flag(f.get("consent_sms"), "consent_sms"),
            "consent_push": fields.flag(f.get("consent_push"), "consent_push"),
        }
        attributes = dict(fields.json_object(f.get("attributes"), "attributes") or {})
        attributes.update(
            (name, value) for name, value in f.items() if name not in _KNOWN and fields.given(value)
        )
        fields.without_nul(attributes, "attributes")
        record["attributes"] = attributes
        return {key: value for key, value in record.items() if value is not None}

    async def write(
        self, session: AsyncSession, batch: Batch[ParsedCustomer], report: ImportReport
    ) -> list[tuple[int, str]]:
        # Read-merge-write: on PostgreSQL two imports at once would each merge into the
        # same stored row and the later commit would drop the other's changes.
        await serialize_writers(session, "customers")
        wanted = {record["external_id"] for record in batch.records}
        stored = await _stored_customers(session, wanted)
        erased = await erased_customers(
            session,
            (
                (record["external_id"], record.get("email"), record.get("phone"))
                for record in batch.records
                if record["external_id"] not in stored
            ),
        )
        records = [record for record in batch.records if record["external_id"] not in erased]
        report.erased += len(batch) - len(records)
        merged: dict[str, dict[str, Any]] = {}
        for record in records:
            key = record["external_id"]
            base = merged.get(key) or stored.get(key) or self._new_customer(key)
            merged[key] = _merge(base, record)
        changed = [row for key, row in merged.items() if row != stored.get(key)]
        for row in changed:
            row["updated_at"] = self.now
        created = sum(1 for key in merged if key not in stored)
        report.inserted += created
        report.updated += len(changed) - created
        report.unchanged += len(records) - len(changed)
        if changed:
            statement = upsert(backend_of(session), _CUSTOMERS)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["external_id"],
                    set_={
                        name: statement.excluded[name] for name in _STORED if name != "created_at"
                    },
                ),
                changed,
            )
        return []

    def _new_customer(self, external_id: str) -> dict[str, Any]:
        row: dict[str, Any] = dict.fromkeys(_STORED)
        row.update(
            external_id=external_id,
            attributes={},
            registered_at=self.now,
            created_at=self.now,
            updated_at=self.now,
        )
        return row


async def _stored_customers(
    session: AsyncSession, external_ids: set[str]
) -> dict[str, dict[str, Any]]:
    columns = [_CUSTOMERS.c[name] for name in _STORED]
    found: dict[str, dict[str, Any]] = {}
    ordered = sorted(external_ids)
    for start in range(0, len(ordered), 500):
        result = await session.execute(
            select(*columns).where(_CUSTOMERS.c.external_id.in_(ordered[start : start + 500]))
        )
        for row in result.mappings():
            found[row["external_id"]] = dict(row)
    return found


def _merge(base: dict[str, Any], update: ParsedCustomer) -> dict[str, Any]:
    merged = {**base, **{k: v for k, v in update.items() if k != "attributes"}}
    merged["attributes"] = {**(base.get("attributes") or {}), **update.get("attributes", {})}
    return merged


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)
