"""Small helpers shared by the tests: writing input files, seeding and reading the store."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from core.db import Store
from core.ingest import import_file
from core.models import Customer, CustomerRollup
from core.settings import Settings


def write(path: Path, text: str) -> str:
    """Write ``text`` as UTF-8 and return the path as the importers take it."""
    path.write_text(text, encoding="utf-8")
    return str(path)


def write_bytes(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def jsonl(path: Path, *records: dict[str, Any]) -> str:
    return write(path, "".join(json.dumps(record) + "\n" for record in records))


def rejects_of(path: Path) -> list[dict[str, Any]]:
    """The rejects file's entries, or none when the import wrote no file."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def customers(store: Store) -> dict[str, Customer]:
    async with store.reading() as session:
        rows = (await session.execute(select(Customer))).scalars().all()
    return {row.external_id: row for row in rows}


async def seed_customers(store: Store, settings: Settings, tmp_path: Path, *ids: str) -> None:
    """Import bare customers ``ids`` so that events for them are accepted."""
    path = write(tmp_path / "seed-customers.csv", "customer_id\n" + "".join(f"{i}\n" for i in ids))
    assert (await import_file(store, settings, "customers", path)).inserted == len(ids)


async def rollup_rows(store: Store) -> list[tuple[str, CustomerRollup]]:
    """Every rollup row with its customer's external id."""
    async with store.reading() as session:
        rows = (
            await session.execute(
                select(Customer.external_id, CustomerRollup).join(
                    Customer, Customer.id == CustomerRollup.customer_id
                )
            )
        ).all()
    return [(external_id, rollup) for external_id, rollup in rows]


async def add_customer(
    store: Store,
    external_id: str,
    registered_at: datetime,
    *,
    attributes: dict[str, Any] | None = None,
    **rollup: Any,
) -> int:
    """Insert a customer, and their rollup row when ``rollup`` fields are given; returns the id."""
    async with store.transaction() as session:
        customer = Customer(
            external_id=external_id,
            registered_at=registered_at,
            attributes=attributes or {},
            created_at=registered_at,
            updated_at=registered_at,
        )
        session.add(customer)
        await session.flush()
        if rollup:
            session.add(CustomerRollup(customer_id=customer.id, **rollup))
        return customer.id


async def update_rollup(store: Store, customer_id: int, **values: Any) -> None:
    async with store.transaction() as session:
        await session.execute(
            update(CustomerRollup).where(CustomerRollup.customer_id == customer_id).values(**values)
        )
