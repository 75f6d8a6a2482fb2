"""Small helpers shared by the tests: writing input files, seeding and reading the store."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
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


CADENCE = Path(sys.executable).with_name("cadence")
"""The console script installed next to this Python, as ``pip install`` puts it."""
if not CADENCE.exists():  # pragma: no cover - an unusual install; use the one on PATH
    CADENCE = Path(shutil.which("cadence") or CADENCE)


def cadence_environment(**extra: str) -> dict[str, str]:
    """This process's environment for a ``cadence`` subprocess: no ``CADENCE_*`` variable
    but those in ``extra``, and plain output."""
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("CADENCE_")}
    environment.update(NO_COLOR="1", TERM="dumb", **extra)
    return environment


async def run_cadence(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``cadence --config CONFIG ARGS`` without blocking the event loop the sink runs
    in, with no ``CADENCE_*`` variable but those in ``env``."""
    return await run_process(str(CADENCE), "--config", str(config), *args, env=env)


async def run_process(
    *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (a ``cadence`` command line) to its end without blocking the event
    loop, with :func:`cadence_environment` plus ``env``; stdout and stderr as text."""
    environment = cadence_environment(**(env or {}))
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return subprocess.CompletedProcess(argv, process.returncode, stdout.decode(), stderr.decode())
