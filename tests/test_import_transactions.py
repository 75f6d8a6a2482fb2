"""``import transactions``: plain purchase files become customers and purchase events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core import clock
from core.db import Store
from core.ingest import import_file
from core.models import Customer, Event
from core.settings import ImportSettings, Settings
from tests.conftest import NOW
from tests.helpers import customers, rejects_of, rollup_rows, write

CDNOW = (
    "customer_id,date,quantity,amount\n"
    "00001,19970101,1,11.77\n"
    "00002,19970112,1,12.00\n"
    "00002,1997-01-12,5,77.00\n"
    "00003,19970102,2,20.76\n"
    "00003,19970330,2,20.76\n"
    "00003,19970402,2,19.54\n"
    "00003,19971115,5,57.45\n"
    "00003,19971125,4,20.96\n"
    "00003,19980528,1,16.99\n"
)


def day(year: int, month: int, on: int) -> datetime:
    return datetime(year, month, on, tzinfo=UTC)


async def purchases(store: Store) -> list[tuple[str, str, datetime, float | None, Any, str]]:
    async with store.reading() as session:
        rows = (
            await session.execute(
                select(
                    Customer.external_id,
                    Event.type,
                    Event.occurred_at,
                    Event.value,
                    Event.properties,
                    Event.source,
                )
                .join(Customer, Customer.id == Event.customer_id)
                .order_by(Customer.external_id, Event.occurred_at, Event.value)
            )
        ).all()
    return [tuple(row) for row in rows]


async def rollups(store: Store) -> dict[str, tuple[datetime | None, datetime | None, int, float]]:
    rows = await rollup_rows(store)
    return {
        external_id: (
            rollup.first_purchase_at,
            rollup.last_purchase_at,
            rollup.purchase_count,
            round(rollup.revenue_total, 2),
        )
        for external_id, rollup in rows
    }


async def test_each_row_is_a_purchase_and_customers_register_at_their_first(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = write(tmp_path / "cdnow.csv", CDNOW)
    report = await import_file(store, settings, "transactions", path)

    assert (report.read, report.inserted, report.unchanged, report.rejected) == (9, 9, 0, 0)
    assert report.customers_created == 3
    found = await customers(store)
    assert sorted(found) == ["00001", "00002", "00003"], "ids keep their leading zeros"
    assert found["00001"].registered_at == day(1997, 1, 1)
    assert found["00002"].registered_at == day(1997, 1, 12)
    assert found["00003"].registered_at == day(1997, 1, 2)
    assert found["00003"].created_at == NOW
    assert found["00003"].attributes == {}

    source = "import:cdnow.csv"
    assert await purchases(store) == [
        ("00001", "purchase", day(1997, 1, 1), 11.77, {"quantity": 1}, source),
        ("00002", "purchase", day(1997, 1, 12), 12.0, {"quantity": 1}, source),
        ("00002", "purchase", day(1997, 1, 12), 77.0, {"quantity": 5}, source),
        ("00003", "purchase", day(1997, 1, 2), 20.76, {"quantity": 2}, source),
        ("00003", "purchase", day(1997, 3, 30), 20.76, {"quantity": 2}, source),
        ("00003", "purchase", day(1997, 4, 2), 19.54, {"quantity": 2}, source),
        ("00003", "purchase", day(1997, 11, 15), 57.45, {"quantity": 5}, source),
        ("00003", "purchase", day(1997, 11, 25), 20.96, {"quantity": 4}, source),
        ("00003", "purchase", day(1998, 5, 28), 16.99, {"quantity": 1}, source),
    ]
    assert await rollups(store) == {
        "00001": (day(1997, 1, 1), day(1997, 1, 1), 1, 11.77),
        "00002": (day(1997, 1, 12), day(1997, 1, 12), 2, 89.0),
        "00003": (day(1997, 1, 2), day(1998, 5, 28), 6, 156.46),
    }


async def test_two_identical_rows_are_two_purchases(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = write(
        tmp_path / "tx.csv",
        "customer_id,date,quantity,amount\n"
        "c1,19970105,1,9.99\n"
        "c1,19970105,1,9.99\n"
        "c1,1997-01-05,1,9.99\n"
        "c1,19970105,2,9.99\n",
    )
    report = await import_file(store, settings, "transactions", path)

    assert (report.inserted, report.unchanged) == (4, 0)
    assert len(await purchases(store)) == 4
    assert (await rollups(store))["c1"] == (day(1997, 1, 5), day(1997, 1, 5), 4, 39.96)


async def test_importing_the_same_file_twice_changes_nothing(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = write(tmp_path / "cdnow.csv", CDNOW + "00004,19970105,1,9.99\n" * 2)
    first = await import_file(store, settings, "transactions", path)
    assert (first.inserted, first.customers_created) == (11, 4)
    events, totals = await purchases(store), await rollups(store)
    before = {
        key: (c.registered_at, c.created_at, c.updated_at)
        for key, c in (await customers(store)).items()
    }

    frozen_clock.advance(timedelta(days=3))
    again = await import_file(store, settings, "transactions", path)

    assert (again.read, again.inserted, again.unchanged, again.rejected) == (11, 0, 11, 0)
    assert again.customers_created == 0
    assert await purchases(store) == events
    assert await rollups(store) == totals
    assert totals["00004"] == (day(1997, 1, 5), day(1997, 1, 5), 2, 19.98)
    after = {
        key: (c.registered_at, c.created_at, c.updated_at)
        for key, c in (await customers(store)).items()
    }
    assert after == before, "no customer is touched, updated_at included"


async def test_registration_moves_back_to_the_earliest_transaction(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    profiles = write(
        tmp_path / "customers.csv",
        "customer_id,email,registered_at\n"
        "late,late@example.com,2000-01-01\n"
        "early,early@example.com,1990-06-01\n",
    )
    await import_file(store, settings, "customers", profiles)
    frozen_clock.advance(timedelta(hours=1))

    # Rows out of date order and more than one write batch apart.
    filler = "".join(f"f{n},19980101,1,1\n" for n in range(6_000))
    path = write(
        tmp_path / "tx.csv",
        "customer_id,date,quantity,amount\n"
        "late,19990101,1,10\n"
        "new,19980505,1,10\n"
        "early,19970101,1,10\n"
        f"{filler}"
        "late,19970303,1,10\n"
        "new,19970202,1,10\n",
    )
    batched = settings.model_copy(update={"imports": ImportSettings(batch_size=1_000)})
    report = await import_file(store, batched, "transactions", path)

    assert report.customers_created == 6_001
    found = await customers(store)
    assert found["late"].registered_at == day(1997, 3, 3)
    assert found["late"].updated_at == NOW + timedelta(hours=1)
    assert found["late"].email == "late@example.com", "the profile is kept"
    assert found["early"].registered_at == day(1990, 6, 1), "an earlier registration stays"
    assert found["early"].updated_at == NOW
    assert found["new"].registered_at == day(1997, 2, 2)
    assert found["f0"].registered_at == day(1998, 1, 1)
    assert (await rollups(store))["late"] == (day(1997, 3, 3), day(1999, 1, 1), 2, 20.0)


async def test_dates_are_read_in_the_configured_zone(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    new_york = settings.model_copy(update={"time_zone": "America/New_York"})
    path = write(tmp_path / "tx.csv", "customer_id,date,quantity,amount\nc1,19970101,1,5\n")
    await import_file(store, new_york, "transactions", path)

    moment = datetime(1997, 1, 1, 5, 0, tzinfo=UTC)
    assert (await customers(store))["c1"].registered_at == moment
    assert (await purchases(store))[0][2] == moment


async def test_bad_rows_are_rejected_and_the_rest_imported(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    rejects = tmp_path / "rejects.jsonl"
    path = write(
        tmp_path / "tx.csv",
        "customer_id,date,quantity,amount\n"
        "c1,19970101,1,10\n"
        "c2,19971301,1,10\n"  # month 13
        "c3,1997-02-30,1,10\n"
        "c4,19970101,-1,10\n"
        "c5,19970101,1.5,10\n"
        "c6,19970101,1,ten\n"
        "c7,19970101,1,\n"
        ",19970101,1,10\n"
        "c8,19970101,1,10,extra\n"
        "c9,19970102,2,20\n",
    )
    report = await import_file(store, settings, "transactions", path, rejects_path=rejects)

    assert (report.read, report.inserted, report.rejected) == (10, 2, 8)
    assert report.customers_created == 2
    assert sorted(await customers(store)) == ["c1", "c9"], "rejected rows create no customer"
    found = {r["line"]: r["reason"] for r in rejects_of(rejects)}
    assert sorted(found) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "`date`" in found[3] and "19971301" in found[3]
    assert "`date`" in found[4] and "1997-02-30" in found[4]
    assert "`quantity` must not be negative" in found[5]
    assert "`quantity`" in found[6] and "whole number" in found[6]
    assert "`amount`" in found[7] and "ten" in found[7]
    assert "missing required field `amount`" in found[8]
    assert "missing required field `customer_id`" in found[9]
    assert "expected 4 columns, found 5" in found[10]


async def test_future_transactions_are_held(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    tomorrow = (NOW + timedelta(days=1)).strftime("%Y%m%d")
    path = write(
        tmp_path / "tx.csv",
        f"customer_id,date,quantity,amount\nc1,20261101,1,10\nc1,{tomorrow},1,90\n",
    )
    report = await import_file(store, settings, "transactions", path)

    assert (report.inserted, report.held) == (2, 1)
    assert (await rollups(store))["c1"] == (day(2026, 11, 1), day(2026, 11, 1), 1, 10.0)
