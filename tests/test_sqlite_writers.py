"""Several writers at once: SQLite's WAL + BEGIN IMMEDIATE + busy timeout, and concurrent imports.

The first tests use their own SQLite file (not the parametrised ``store``):
separate processes and separate engines do read-modify-write increments on
one row. With deferred transactions SQLite would either lose updates or fail
with "database is locked"; Cadence's writers take the lock at BEGIN and wait
for it, so every increment lands. The last tests run two imports side by
side on both backends and check the rollups are exact.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, text, update

from core import clock
from core.db import Store, create_engine
from core.ingest import import_file
from core.migrations import upgrade
from core.models import Customer, CustomerRollup, Event
from core.settings import ImportSettings, Settings, SqliteSettings
from tests.conftest import NOW
from tests.helpers import rollup_rows, write

PROCESSES = 4
INCREMENTS = 40

WORKER = """
import asyncio, pathlib, sys
from sqlalchemy import select, update
from core.db import Store, create_engine
from core.models import CustomerRollup

async def main(url: str, go: str, increments: int) -> None:
    store = Store(create_engine(url))
    try:
        async with store.reading() as session:  # connect before the start signal
            await session.execute(select(CustomerRollup.event_count))
        print("ready", flush=True)
        while not pathlib.Path(go).exists():
            await asyncio.sleep(0.002)
        for _ in range(increments):
            async with store.transaction() as session:
                count = (await session.execute(select(CustomerRollup.event_count))).scalar_one()
                await asyncio.sleep(0.001)  # widen the window between read and write
                await session.execute(update(CustomerRollup).values(event_count=count + 1))
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def _new_counter_database(url: str) -> None:
    """A migrated SQLite store holding one customer and its rollup row, the counter."""
    store = Store(create_engine(url))
    try:
        await upgrade(store)
        async with store.transaction() as session:
            customer = Customer(
                external_id="counter", registered_at=NOW, created_at=NOW, updated_at=NOW
            )
            session.add(customer)
            await session.flush()
            session.add(CustomerRollup(customer_id=customer.id, event_count=0))
    finally:
        await store.close()


async def _counter(url: str) -> int:
    store = Store(create_engine(url))
    try:
        async with store.reading() as session:
            return int((await session.execute(select(CustomerRollup.event_count))).scalar_one())
    finally:
        await store.close()


async def _increment(store: Store, times: int) -> None:
    for _ in range(times):
        async with store.transaction() as session:
            count = (await session.execute(select(CustomerRollup.event_count))).scalar_one()
            await asyncio.sleep(0)  # let the other writers run between read and write
            await session.execute(update(CustomerRollup).values(event_count=count + 1))


def test_writer_processes_never_lose_an_update_nor_fail_locked(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'counter.db'}"
    asyncio.run(_new_counter_database(url))
    go = tmp_path / "go"
    root = Path(__file__).resolve().parents[1]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(go), str(INCREMENTS)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        go.touch()  # all start at once
        results = [worker.communicate(timeout=60) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    for worker, (_, errors) in zip(workers, results, strict=True):
        assert "database is locked" not in errors
        assert worker.returncode == 0, errors
    assert asyncio.run(_counter(url)) == PROCESSES * INCREMENTS


async def test_writer_engines_in_one_process_never_lose_an_update(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'counter.db'}"
    await _new_counter_database(url)
    stores = [Store(create_engine(url)) for _ in range(PROCESSES)]
    try:
        await asyncio.gather(*(_increment(store, INCREMENTS) for store in stores))
    finally:
        for store in stores:
            await store.close()
    assert await _counter(url) == PROCESSES * INCREMENTS


async def test_the_store_configures_sqlite_for_several_writers(tmp_path: Path) -> None:
    store = Store(
        create_engine(f"sqlite:///{tmp_path / 'x.db'}", SqliteSettings(busy_timeout_ms=1234))
    )
    try:
        async with store.reading() as session:
            pragmas = {
                name: (await session.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
    finally:
        await store.close()
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 1234}


async def test_a_writer_waits_for_the_lock_then_reads_the_committed_value(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'counter.db'}"
    await _new_counter_database(url)
    first, second, reader = (Store(create_engine(url)) for _ in range(3))
    holding = asyncio.Event()
    try:

        async def hold_the_lock() -> None:
            async with first.transaction() as session:
                await session.execute(update(CustomerRollup).values(event_count=100))
                holding.set()
                await asyncio.sleep(0.3)

        async def write_after() -> int:
            await holding.wait()
            async with second.transaction() as session:
                count = int(
                    (await session.execute(select(CustomerRollup.event_count))).scalar_one()
                )
                await session.execute(update(CustomerRollup).values(event_count=count + 1))
            return count

        async def read_meanwhile() -> int:
            await holding.wait()
            async with reader.reading() as session:  # WAL: readers never wait for writers
                return int((await session.execute(select(CustomerRollup.event_count))).scalar_one())

        _, seen_by_writer, seen_by_reader = await asyncio.wait_for(
            asyncio.gather(hold_the_lock(), write_after(), read_meanwhile()), timeout=10
        )
    finally:
        for store in (first, second, reader):
            await store.close()

    assert seen_by_reader == 0, "the reader saw the last committed value without waiting"
    assert seen_by_writer == 100, "the second writer began only after the first committed"
    assert await _counter(url) == 101


# Two imports at once, on both backends ---------------------------------------------------


def _event_file(
    path: Path, customers: list[str], rows: int, seed: int
) -> tuple[str, list[tuple[str, str, datetime, float | None]]]:
    kinds = ("purchase", "login", "page_view", "purchase", "message_clicked")
    start = NOW - timedelta(days=60)
    events: list[tuple[str, str, datetime, float | None]] = []
    for n in range(rows):
        kind = kinds[(n + seed) % len(kinds)]
        moment = start + timedelta(seconds=(n * 7919 + seed * 104_729) % 5_000_000)
        value = round(((n * seed) % 500) / 4 + 0.01, 2) if kind == "purchase" else None
        events.append((customers[(n * 7 + seed) % len(customers)], kind, moment, value))
    body = "".join(
        f"{c},{k},{m.isoformat()},{'' if v is None else v},{seed}\n" for c, k, m, v in events
    )
    return write(path, "customer_id,type,occurred_at,value,file\n" + body), events


async def _rollup_totals(store: Store) -> dict[str, tuple[Any, ...]]:
    rows = await rollup_rows(store)
    return {
        external_id: (
            r.purchase_count,
            round(r.revenue_total, 2),
            r.first_purchase_at,
            r.last_purchase_at,
            r.last_login_at,
            r.last_click_at,
            r.first_event_at,
            r.last_event_at,
            r.event_count,
        )
        for external_id, r in rows
    }


def _expected(events: list[tuple[str, str, datetime, float | None]]) -> dict[str, tuple[Any, ...]]:
    by_customer: dict[str, list[tuple[str, datetime, float | None]]] = defaultdict(list)
    for customer, kind, moment, value in events:
        by_customer[customer].append((kind, moment, value))
    result: dict[str, tuple[Any, ...]] = {}
    for customer, rows in by_customer.items():
        bought = [(moment, value or 0.0) for kind, moment, value in rows if kind == "purchase"]
        logins = [moment for kind, moment, _ in rows if kind == "login"]
        clicks = [moment for kind, moment, _ in rows if kind == "message_clicked"]
        times = [moment for _, moment, _ in rows]
        result[customer] = (
            len(bought),
            round(sum(value for _, value in bought), 2),
            min((m for m, _ in bought), default=None),
            max((m for m, _ in bought), default=None),
            max(logins, default=None),
            max(clicks, default=None),
            min(times),
            max(times),
            len(rows),
        )
    return result


async def test_two_concurrent_event_imports_give_exact_rollups(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    customers = [f"c{n}" for n in range(30)]
    seed = write(tmp_path / "customers.csv", "customer_id\n" + "\n".join(customers) + "\n")
    await import_file(store, settings, "customers", seed)
    batched = settings.model_copy(update={"imports": ImportSettings(batch_size=500)})
    first_path, first_events = _event_file(tmp_path / "a.csv", customers, 6_000, seed=1)
    second_path, second_events = _event_file(tmp_path / "b.csv", customers, 6_000, seed=2)
    other = Store(create_engine(settings.database_url, settings.sqlite))  # a second node
    try:
        first, second = await asyncio.gather(
            import_file(store, batched, "events", first_path),
            import_file(other, batched, "events", second_path),
        )
    finally:
        await other.close()

    assert (first.inserted, first.rejected, second.inserted, second.rejected) == (
        6_000,
        0,
        6_000,
        0,
    )
    async with store.reading() as session:
        stored = len((await session.execute(select(Event.id))).all())
    assert stored == 12_000
    assert await _rollup_totals(store) == _expected(first_events + second_events)


async def test_two_concurrent_transaction_imports_create_each_customer_once(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    customers = [f"n{n}" for n in range(2_000)]
    header = "customer_id,date,quantity,amount\n"
    first = write(
        tmp_path / "a.csv",
        header
        + "".join(f"{c},19970{1 + n % 9}01,1,{n % 50}.25\n" for n, c in enumerate(customers)),
    )
    second = write(
        tmp_path / "b.csv",
        header
        + "".join(f"{c},1996{10 + n % 3}15,2,{n % 30}.50\n" for n, c in enumerate(customers)),
    )
    batched = settings.model_copy(update={"imports": ImportSettings(batch_size=200)})
    other = Store(create_engine(settings.database_url, settings.sqlite))
    try:
        reports = await asyncio.gather(
            import_file(store, batched, "transactions", first),
            import_file(other, batched, "transactions", second),
        )
    finally:
        await other.close()

    assert [r.inserted for r in reports] == [2_000, 2_000]
    assert sum(r.customers_created for r in reports) >= 2_000
    async with store.reading() as session:
        found = {
            c.external_id: c.registered_at
            for c in (await session.execute(select(Customer))).scalars()
        }
    assert len(found) == 2_000
    assert found["n0"] == datetime(1996, 10, 15, tzinfo=UTC), "the earlier file's date wins"
    assert found["n1"] == datetime(1996, 11, 15, tzinfo=UTC)
    totals = await _rollup_totals(store)
    assert totals["n0"][:2] == (2, 0.75)
    assert totals["n31"][:2] == (2, round(31 % 50 + 0.25 + 31 % 30 + 0.5, 2))
    assert sum(t[0] for t in totals.values()) == 4_000


async def test_two_concurrent_customer_imports_merge_both_files(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    ids = [f"c{n}" for n in range(3_000)]
    first = write(tmp_path / "a.csv", "customer_id,a\n" + "".join(f"{i},1\n" for i in ids))
    second = write(tmp_path / "b.csv", "customer_id,b\n" + "".join(f"{i},2\n" for i in ids))
    batched = settings.model_copy(update={"imports": ImportSettings(batch_size=300)})
    other = Store(create_engine(settings.database_url, settings.sqlite))
    try:
        await asyncio.gather(
            import_file(store, batched, "customers", first),
            import_file(other, batched, "customers", second),
        )
    finally:
        await other.close()

    async with store.reading() as session:
        found = (await session.execute(select(Customer.attributes))).scalars().all()
    assert len(found) == 3_000
    lost = [attributes for attributes in found if attributes != {"a": "1", "b": "2"}]
    assert lost == [], f"{len(lost)} customers lost one import's attributes"


async def test_the_same_file_imported_by_two_nodes_at_once_counts_once(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    customers = [f"c{n}" for n in range(30)]
    seed = write(tmp_path / "customers.csv", "customer_id\n" + "\n".join(customers) + "\n")
    await import_file(store, settings, "customers", seed)
    batched = settings.model_copy(update={"imports": ImportSettings(batch_size=500)})
    path, events = _event_file(tmp_path / "a.csv", customers, 6_000, seed=3)
    other = Store(create_engine(settings.database_url, settings.sqlite))
    try:
        reports = await asyncio.gather(
            import_file(store, batched, "events", path),
            import_file(other, batched, "events", path),
        )
    finally:
        await other.close()

    assert sum(r.inserted for r in reports) == 6_000
    assert sum(r.unchanged for r in reports) == 6_000
    assert await _rollup_totals(store) == _expected(events)
