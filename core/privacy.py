"""What Cadence holds about one customer: exported whole (``cadence customer export``) or
erased (``cadence customer erase``).

A customer's rows are found through the models' foreign keys: every table with a key to
``customers``, and every table with a key to one of those (a pending rollup belongs to an
event, which belongs to a customer), so a new table is exported and erased by
construction. Suppressions of the customer's addresses and the audit entries about them
hold no key and are found by address and by target.

Erasure deletes those rows in one transaction and keeps only keyed hashes
(HMAC-SHA256 with a secret kept in the store) of the customer's id, e-mail address and
phone number, as suppressions with channel :data:`ERASED`. The importers look new
customers up among them (:func:`erased_customers`) and refuse to bring an erased person
back; with the person and their queued messages gone, the planner has no one to plan
and a worker that claimed a message just before finds no customer and cancels it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from hashlib import sha256
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, delete, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import record_action
from core.db import Store
from core.db.dialect import backend_of, rowcount, serialize_writers, upsert
from core.errors import CadenceError
from core.links import shared_key
from core.models import AuditEntry, Base, Customer, Event, SigningKey, Suppression
from core.policy.channels import CHANNELS

ERASED = "erased"
"""``suppressions.channel`` and ``reason`` of the hashed identifiers of erased customers."""
_KEY_NAME = "erasure"
_LOOKUP_CHUNK = 500
_TABLES = Base.metadata.tables
_CUSTOMERS = _TABLES[Customer.__tablename__]
_EVENTS = _TABLES[Event.__tablename__]
_SUPPRESSIONS = _TABLES[Suppression.__tablename__]
_AUDIT = _TABLES[AuditEntry.__tablename__]


class CustomerNotFoundError(CadenceError):
    """No customer has the id asked for (perhaps they were erased)."""


def customer_tables() -> list[Table]:
    """The tables whose rows belong to one customer, ``customers`` first, each after the
    tables it refers to."""
    owned = [_CUSTOMERS]
    for table in Base.metadata.sorted_tables:
        if table is not _CUSTOMERS and any(fk.column.table in owned for fk in table.foreign_keys):
            owned.append(table)
    return owned


def customer_ref(external_id: str) -> str:
    """The audit target of an action about one customer."""
    return f"customer:{external_id}"


def erased_reason(external_id: str) -> str:
    """Why an input row about an erased customer was not stored."""
    return f"customer `{external_id}` was erased at their request; nothing about them is stored"


async def export_customer(store: Store, external_id: str, now: datetime) -> dict[str, Any]:
    """Everything held about the customer ``external_id`` as plain JSON data: the rows of
    each of :func:`customer_tables` and of ``suppressions`` and ``audit_log`` that concern
    them, by table, and the names of the segments, campaigns and journeys those rows
    refer to. The export itself goes to the audit log."""
    async with store.reading() as session:
        customer = await _customer(session, external_id)
        tables: dict[str, list[dict[str, Any]]] = {}
        for table, condition in (await _rows_about(session, customer)).items():
            query = select(table).where(condition).order_by(*table.primary_key.columns)
            rows = (await session.execute(query)).mappings()
            tables[table.name] = [
                {key: _plain(value) for key, value in row.items()} for row in rows
            ]
        names = await _names(session, tables)
    async with store.transaction() as session:
        record_action(session, "customer.export", customer_ref(external_id))
    return {
        "customer_id": external_id,
        "exported_at": now.isoformat(),
        "tables": tables,
        "names": names,
    }


@dataclass(frozen=True)
class Erasure:
    """What erasing one customer did."""

    reference: str
    """The audit log's target for the erased customer (``customer:erased:<hash>``): no
    personal data, yet a given id can be checked against it."""
    deleted: dict[str, int]
    """Rows deleted, by table (tables with none left out)."""
    audit_entries: int
    """Audit entries about the customer, kept with the customer's name for them replaced."""
    identifiers: int
    """Hashed identifiers kept, which block the customer's return."""


async def erase_customer(store: Store, external_id: str, now: datetime) -> Erasure:
    """Delete everything held about the customer ``external_id`` in one transaction, keep
    their identifiers hashed so that imports refuse them, and record the erasure in the
    audit log without personal data."""
    async with store.transaction() as session:
        # An import merging this customer's row meanwhile would bring them back.
        await serialize_writers(session, "customers")
        customer = await _customer(session, external_id)
        key = await shared_key(session, _KEY_NAME, now)
        hashed = _hashed_identifiers(key, external_id, customer.email, customer.phone)
        reference = f"customer:{ERASED}:{hashed[0].partition(':')[2]}"
        deleted: dict[str, int] = {}
        audit_entries = 0
        for table, condition in reversed((await _rows_about(session, customer)).items()):
            if table is _SUPPRESSIONS:
                # An address another customer still uses keeps its suppression: it is
                # theirs too, and dropping it could message someone who said no.
                shared = await _shared_addresses(session, customer)
                condition = and_(condition, func.lower(_SUPPRESSIONS.c.address).not_in(shared))
            if table is _AUDIT:
                # The actions stay in the log; only what named the customer goes.
                changed = update(_AUDIT).values(target=reference, details=None, summary=None)
                audit_entries = rowcount(await session.execute(changed.where(condition)))
                continue
            count = rowcount(await session.execute(delete(table).where(condition)))
            if count:
                deleted[table.name] = count
        entries = [
            {
                "channel": ERASED,
                "address": address,
                "reason": ERASED,
                "source": "customer erase",
                "created_at": now,
            }
            for address in hashed
        ]
        insert = upsert(backend_of(session), _SUPPRESSIONS).on_conflict_do_nothing()
        await session.execute(insert, entries)
        record_action(
            session,
            "customer.erase",
            reference,
            {"deleted": deleted, "audit_entries": audit_entries, "identifiers": len(hashed)},
            f"erased a customer: {sum(deleted.values()):,} rows deleted, "
            f"{len(hashed)} hashed identifiers kept",
        )
    return Erasure(reference, deleted, audit_entries, len(hashed))


async def erased_customers(
    session: AsyncSession, people: Iterable[tuple[str, str | None, str | None]]
) -> set[str]:
    """Which of ``people`` (external id, e-mail, phone) were erased: any of their
    identifiers matches an erased customer's. Costs one key lookup until someone is erased."""
    wanted = list(people)
    if not wanted:
        return set()
    key = (
        await session.execute(select(SigningKey.secret).where(SigningKey.name == _KEY_NAME))
    ).scalar_one_or_none()
    if key is None:
        return set()
    owners: dict[str, set[str]] = {}
    for external_id, email, phone in wanted:
        for address in _hashed_identifiers(key.encode(), external_id, email, phone):
            owners.setdefault(address, set()).add(external_id)
    addresses = sorted(owners)
    erased: set[str] = set()
    for start in range(0, len(addresses), _LOOKUP_CHUNK):
        found = await session.execute(
            select(_SUPPRESSIONS.c.address).where(
                _SUPPRESSIONS.c.channel == ERASED,
                _SUPPRESSIONS.c.address.in_(addresses[start : start + _LOOKUP_CHUNK]),
            )
        )
        for address in found.scalars():
            erased |= owners[address]
    return erased


async def _customer(session: AsyncSession, external_id: str) -> Customer:
    customer = (
        await session.execute(select(Customer).where(Customer.external_id == external_id))
    ).scalar_one_or_none()
    if customer is not None:
        return customer
    if await erased_customers(session, [(external_id, None, None)]):
        raise CustomerNotFoundError(
            f"customer `{external_id}` was erased; Cadence holds nothing about them but "
            "hashed identifiers, which keep them from being imported again"
        )
    raise CustomerNotFoundError(
        f"no customer has the id `{external_id}`; the id is the `customer_id` they were "
        "imported with (the console's Customers screen finds them by e-mail or name)"
    )


def _hashed_identifiers(
    key: bytes, external_id: str, email: str | None, phone: str | None
) -> list[str]:
    """The customer's identifiers as erasure entries, the external id's first. E-mail
    addresses compare in lower case (the importers keep the local part as written)."""
    identifiers = [("customer_id", external_id), ("email", (email or "").strip().lower())]
    identifiers.append(("phone", (phone or "").strip()))
    return [
        f"{kind}:{hmac.new(key, f'{kind}:{value}'.encode(), sha256).hexdigest()}"
        for kind, value in identifiers
        if value
    ]


async def _rows_about(
    session: AsyncSession, customer: Customer
) -> dict[Table, ColumnElement[bool]]:
    """For each of :func:`customer_tables`, then ``suppressions`` and ``audit_log``, the
    condition that selects the customer's rows."""
    events = _EVENTS.c
    types = await _event_types(session)
    owned: dict[Table, ColumnElement[bool]] = {_CUSTOMERS: _CUSTOMERS.c.id == customer.id}
    for table in customer_tables()[1:]:
        keys = [fk for fk in table.foreign_keys if fk.column.table in owned]
        # The shortest way to the customer: their own key when the table has one.
        fk = next((fk for fk in keys if fk.column.table is _CUSTOMERS), keys[0])
        if fk.column.table is _CUSTOMERS:
            condition = fk.parent == customer.id
        else:
            condition = fk.parent.in_(select(fk.column).where(owned[fk.column.table]))
        if table is _EVENTS:
            # No index on events starts with the customer (each one is paid for by every
            # ingested event); the one on (type, customer) finds them a type at a time.
            condition = and_(events.type.in_(types), condition)
        owned[table] = condition
    addresses = {
        (rule.suppression_channel, value.lower())
        for rule in CHANNELS.values()
        if rule.address is not None and rule.suppression_channel is not None
        if (value := getattr(customer, rule.address.name))
    }
    suppressions = _SUPPRESSIONS.c
    # In any case: a bounce report may name the address otherwise than the import did.
    owned[_SUPPRESSIONS] = or_(
        false(),
        *(
            and_(suppressions.channel == channel, func.lower(suppressions.address) == value)
            for channel, value in sorted(addresses)
        ),
    )
    owned[_AUDIT] = _AUDIT.c.target == customer_ref(customer.external_id)
    return owned


async def _event_types(session: AsyncSession) -> list[str]:
    """Every event type stored, one index seek per type (a loose index scan)."""
    events = _EVENTS.c
    seen = select(func.min(events.type).label("type")).cte("event_types", recursive=True)
    following = select(
        select(func.min(events.type)).where(events.type > seen.c.type).scalar_subquery()
    ).where(seen.c.type.is_not(None))
    seen = seen.union_all(following)
    query = select(seen.c.type).where(seen.c.type.is_not(None))
    return list((await session.execute(query)).scalars())


async def _shared_addresses(session: AsyncSession, customer: Customer) -> list[str]:
    """Those of the customer's addresses (in lower case) that another customer has too."""
    customers = _CUSTOMERS.c
    shared = []
    for column, value in ((customers.email, customer.email), (customers.phone, customer.phone)):
        if value:
            query = select(customers.id).where(
                customers.id != customer.id, func.lower(column) == value.lower()
            )
            if (await session.execute(query.limit(1))).first() is not None:
                shared.append(value.lower())
    return shared


async def _names(
    session: AsyncSession, tables: dict[str, list[dict[str, Any]]]
) -> dict[str, dict[str, str]]:
    """The names of the rows outside the export that its rows refer to (segments,
    campaigns, journeys), so that a reader needs no other table."""
    wanted: dict[Table, set[Any]] = {}
    for table in customer_tables():
        for fk in table.foreign_keys:
            target = fk.column.table
            if target.name not in tables and "name" in target.c:
                values = {row[fk.parent.name] for row in tables[table.name]}
                wanted.setdefault(target, set()).update(values - {None})
    names: dict[str, dict[str, str]] = {}
    for target, ids in sorted(wanted.items(), key=lambda item: item[0].name):
        (key,) = target.primary_key.columns
        rows = await session.execute(select(key, target.c.name).where(key.in_(sorted(ids))))
        names[target.name] = {str(row_id): name for row_id, name in rows.all()}
    return names


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
