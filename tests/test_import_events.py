"""``import events``: idempotent appends, properties, held-back future events and rollups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core import clock
from core.db import Store
from core.ingest import import_file
from core.models import Customer, Event, PendingRollup
from core.rollups import roll_up_due_events
from core.settings import ImportSettings, Settings
from tests.conftest import NOW
from tests.helpers import jsonl, rejects_of, rollup_rows, seed_customers, write


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass(frozen=True)
class StoredEvent:
    customer: str
    type: str
    occurred_at: datetime
    value: float | None
    properties: dict[str, Any] | None
    source: str
    idempotency_key: str | None


async def stored_events(store: Store) -> list[StoredEvent]:
    async with store.reading() as session:
        rows = (
            await session.execute(
                select(Customer.external_id, Event)
                .join(Customer, Customer.id == Event.customer_id)
                .order_by(Event.occurred_at, Customer.external_id, Event.type, Event.id)
            )
        ).all()
    return [
        StoredEvent(
            external_id,
            event.type,
            event.occurred_at,
            event.value,
            event.properties,
            event.source,
            event.idempotency_key,
        )
        for external_id, event in rows
    ]


async def rollups(store: Store) -> dict[str, dict[str, Any]]:
    """Every customer's rollup row (money rounded to cents), by external id."""
    rows = await rollup_rows(store)
    return {
        external_id: {
            "first_purchase_at": rollup.first_purchase_at,
            "last_purchase_at": rollup.last_purchase_at,
            "purchase_count": rollup.purchase_count,
            "revenue_total": round(rollup.revenue_total, 2),
            "last_login_at": rollup.last_login_at,
            "last_open_at": rollup.last_open_at,
            "last_click_at": rollup.last_click_at,
            "last_message_at": rollup.last_message_at,
            "first_event_at": rollup.first_event_at,
            "last_event_at": rollup.last_event_at,
            "event_count": rollup.event_count,
        }
        for external_id, rollup in rows
    }


def expected_rollups(events: list[tuple[str, str, datetime, float | None]]) -> dict[str, Any]:
    """What the rollups must say about ``events`` (customer, type, occurred_at, value)."""
    last_seen = {
        "login": "last_login_at",
        "message_opened": "last_open_at",
        "message_clicked": "last_click_at",
        "message_sent": "last_message_at",
    }
    result: dict[str, dict[str, Any]] = {}
    for customer, kind, moment, value in events:
        row = result.setdefault(
            customer,
            {
                "first_purchase_at": None,
                "last_purchase_at": None,
                "purchase_count": 0,
                "revenue_total": 0.0,
                "last_login_at": None,
                "last_open_at": None,
                "last_click_at": None,
                "last_message_at": None,
                "first_event_at": moment,
                "last_event_at": moment,
                "event_count": 0,
            },
        )
        row["event_count"] += 1
        row["first_event_at"] = min(row["first_event_at"], moment)
        row["last_event_at"] = max(row["last_event_at"], moment)
        if kind == "purchase":
            row["purchase_count"] += 1
            row["revenue_total"] += value or 0.0
            row["first_purchase_at"] = min(row["first_purchase_at"] or moment, moment)
            row["last_purchase_at"] = max(row["last_purchase_at"] or moment, moment)
        if kind in last_seen:
            column = last_seen[kind]
            row[column] = max(row[column] or moment, moment)
    for row in result.values():
        row["revenue_total"] = round(row["revenue_total"], 2)
    return result


async def count(store: Store, model: type[Event] | type[PendingRollup]) -> int:
    async with store.reading() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_csv_events_are_stored_with_their_fields(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await seed_customers(store, settings, tmp_path, "c1", "c2")
    path = write(
        tmp_path / "events.csv",
        "customer_id,type,occurred_at,value,source,idempotency_key,product_id,page\n"
        "c1,purchase,2026-11-01T10:00:00Z,19.99,,,p-1,\n"
        "c1,Login,2026-11-02 08:00:00+01:00,,web,,,/home\n"
        "c2,page_view,20261103,,,k-1,,/p/1\n"
        'c2,cart_add,2026-11-04T09:15:30.250000,3,,,"p,2",\n',
    )
    report = await import_file(store, settings, "events", path)

    assert (report.read, report.inserted, report.unchanged, report.rejected) == (4, 4, 0, 0)
    assert report.held == 0
    assert await stored_events(store) == [
        StoredEvent(
            "c1",
            "purchase",
            at("2026-11-01T10:00:00+00:00"),
            19.99,
            {"product_id": "p-1"},
            "import:events.csv",
            None,
        ),
        StoredEvent(
            "c1", "login", at("2026-11-02T07:00:00+00:00"), None, {"page": "/home"}, "web", None
        ),
        StoredEvent(
            "c2",
            "page_view",
            at("2026-11-03T00:00:00+00:00"),
            None,
            {"page": "/p/1"},
            "import:events.csv",
            "k-1",
        ),
        StoredEvent(
            "c2",
            "cart_add",
            at("2026-11-04T09:15:30.250000+00:00"),
            3.0,
            {"product_id": "p,2"},
            "import:events.csv",
            None,
        ),
    ]


async def test_jsonl_events_merge_properties_and_read_naive_times_in_the_zone(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    warsaw = settings.model_copy(update={"time_zone": "Europe/Warsaw"})
    await seed_customers(store, warsaw, tmp_path, "c1", "42")
    path = jsonl(
        tmp_path / "events.jsonl",
        {
            "customer_id": "c1",
            "type": "big_win",
            "occurred_at": "2026-07-01T12:00:00",
            "value": 250,
            "properties": {"game": "roulette", "round": 7},
            "table": "vip-1",
            "tags": ["x", "y"],
            "empty": "",
            "nothing": None,
        },
        {
            "customer_id": 42,
            "type": "purchase",
            "occurred_at": "2026-01-10T12:00:00Z",
            "value": "12.5",
            "source": "shop",
        },
    )
    report = await import_file(store, warsaw, "events", path)

    assert (report.inserted, report.rejected) == (2, 0)
    assert await stored_events(store) == [
        StoredEvent("42", "purchase", at("2026-01-10T12:00:00+00:00"), 12.5, None, "shop", None),
        StoredEvent(
            "c1",
            "big_win",
            at("2026-07-01T10:00:00+00:00"),
            250.0,
            {"game": "roulette", "round": 7, "table": "vip-1", "tags": ["x", "y"]},
            "import:events.jsonl",
            None,
        ),
    ]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_importing_the_same_file_twice_changes_nothing(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock, fmt: str
) -> None:
    await seed_customers(store, settings, tmp_path, "c1", "c2")
    rows = [
        ("c1", "purchase", "2026-10-01T10:00:00Z", "10.5", "p-1"),
        ("c1", "login", "2026-10-02T10:00:00Z", "", ""),
        ("c2", "purchase", "2026-10-03T10:00:00+02:00", "20.25", "p-2"),
        ("c2", "page_view", "2026-10-04", "", "p-2"),
        ("c2", "message_opened", "2026-10-05T00:00:00Z", "", ""),
    ]
    if fmt == "csv":
        body = "".join(",".join(row) + "\n" for row in rows)
        path = write(tmp_path / "events.csv", "customer_id,type,occurred_at,value,product\n" + body)
    else:
        path = jsonl(
            tmp_path / "events.jsonl",
            *(
                {
                    "customer_id": c,
                    "type": t,
                    "occurred_at": o,
                    "value": float(v) if v else None,
                    "product": p or None,
                }
                for c, t, o, v, p in rows
            ),
        )
    first = await import_file(store, settings, "events", path)
    assert (first.inserted, first.unchanged) == (5, 0)
    events, totals = await stored_events(store), await rollups(store)

    frozen_clock.advance(timedelta(days=1))
    again = await import_file(store, settings, "events", path)

    assert (again.read, again.inserted, again.unchanged, again.rejected) == (5, 0, 5, 0)
    assert await stored_events(store) == events
    assert await rollups(store) == totals
    assert totals["c2"]["purchase_count"] == 1
    assert totals["c2"]["revenue_total"] == 20.25
    assert totals["c2"]["last_open_at"] == at("2026-10-05T00:00:00+00:00")


async def test_the_same_event_in_csv_and_in_jsonl_is_stored_once(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await seed_customers(store, settings, tmp_path, "c1")
    csv_path = write(
        tmp_path / "a.csv",
        "customer_id,type,occurred_at,value,product_id\nc1,purchase,2026-11-01T10:00:00Z,19.99,p-1\n",
    )
    jsonl_path = jsonl(
        tmp_path / "b.jsonl",
        {
            "customer_id": "c1",
            "type": "purchase",
            "occurred_at": "2026-11-01T11:00:00+01:00",
            "value": 19.99,
            "properties": {"product_id": "p-1"},
            "source": "another-feed",
        },
    )
    assert (await import_file(store, settings, "events", csv_path)).inserted == 1
    report = await import_file(store, settings, "events", jsonl_path)

    assert (report.inserted, report.unchanged) == (0, 1)
    assert len(await stored_events(store)) == 1
    assert (await rollups(store))["c1"]["purchase_count"] == 1


async def test_identical_lines_without_a_key_are_one_event(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await seed_customers(store, settings, tmp_path, "c1")
    line = "c1,purchase,2026-11-01T10:00:00Z,5\n"
    path = write(tmp_path / "e.csv", "customer_id,type,occurred_at,value\n" + line * 3)
    report = await import_file(store, settings, "events", path)

    assert (report.read, report.inserted, report.unchanged) == (3, 1, 2)
    assert len(await stored_events(store)) == 1
    assert (await rollups(store))["c1"]["revenue_total"] == 5.0


async def test_an_idempotency_key_makes_redeliveries_one_event(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await seed_customers(store, settings, tmp_path, "c1", "c2")
    header = "customer_id,type,occurred_at,value,idempotency_key,note\n"
    first = write(
        tmp_path / "first.csv",
        header + "c1,purchase,2026-11-01T10:00:00Z,10,order-1,first\n"
        # same key and time in the same file, different content: a redelivery
        "c1,purchase,2026-11-01T10:00:00Z,99,order-1,retry\n"
        "c2,purchase,2026-11-01T10:00:00Z,10,order-2,\n",
    )
    report = await import_file(store, settings, "events", first)
    assert (report.inserted, report.unchanged) == (2, 1)

    second = write(
        tmp_path / "second.csv",
        header + "c1,purchase,2026-11-01T10:00:00Z,55,order-1,late\n"
        "c2,purchase,2026-11-01T10:00:00Z,10,order-3,\n",
    )
    report = await import_file(store, settings, "events", second)
    assert (report.inserted, report.unchanged) == (1, 1)

    stored = await stored_events(store)
    assert [(e.customer, e.idempotency_key, e.value) for e in stored] == [
        ("c1", "order-1", 10.0),
        ("c2", "order-2", 10.0),
        ("c2", "order-3", 10.0),
    ]
    assert stored[0].properties == {"note": "first"}
    totals = await rollups(store)
    assert (totals["c1"]["purchase_count"], totals["c1"]["revenue_total"]) == (1, 10.0)
    assert (totals["c2"]["purchase_count"], totals["c2"]["revenue_total"]) == (2, 20.0)


async def test_an_unknown_customer_is_rejected_by_name_and_the_rest_imported(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await seed_customers(store, settings, tmp_path, "c1")
    rejects = tmp_path / "rejects.jsonl"
    path = write(
        tmp_path / "e.csv",
        "customer_id,type,occurred_at,value\n"
        "c1,login,2026-11-01T10:00:00Z,\n"
        "ghost,purchase,2026-11-01T11:00:00Z,30\n"
        "c1,purchase,2026-11-01T12:00:00Z,7\n",
    )
    report = await import_file(store, settings, "events", path, rejects_path=rejects)

    assert (report.read, report.inserted, report.rejected) == (3, 2, 1)
    [reject] = rejects_of(rejects)
    assert reject["line"] == 3
    assert "unknown customer" in reject["reason"] and "ghost" in reject["reason"]
    assert "ghost" in reject["record"] and "2026-11-01T11:00:00Z" in reject["record"]
    assert [(e.customer, e.type) for e in await stored_events(store)] == [
        ("c1", "login"),
        ("c1", "purchase"),
    ]
    assert set(await rollups(store)) == {"c1"}
    assert await count(store, Event) == 2


async def test_rollups_are_exact_and_accumulate_across_imports(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await seed_customers(store, settings, tmp_path, "c1", "c2", "c3")
    header = "customer_id,type,occurred_at,value\n"
    first = write(
        tmp_path / "first.csv",
        header + "c1,purchase,2026-03-10T10:00:00Z,10.50\n"
        "c1,login,2026-03-11T08:00:00Z,\n"
        "c1,purchase,2026-05-01T10:00:00Z,20.25\n"
        "c1,page_view,2026-05-02T10:00:00Z,\n"
        "c1,login,2026-04-01T08:00:00Z,\n"  # older than the login above: not the last
        "c2,login,2026-06-01T08:00:00Z,\n",
    )
    await import_file(store, settings, "events", first)

    totals = await rollups(store)
    assert set(totals) == {"c1", "c2"}, "a customer without events has no rollup yet"
    assert totals["c1"] == {
        "first_purchase_at": at("2026-03-10T10:00:00+00:00"),
        "last_purchase_at": at("2026-05-01T10:00:00+00:00"),
        "purchase_count": 2,
        "revenue_total": 30.75,
        "last_login_at": at("2026-04-01T08:00:00+00:00"),
        "last_open_at": None,
        "last_click_at": None,
        "last_message_at": None,
        "first_event_at": at("2026-03-10T10:00:00+00:00"),
        "last_event_at": at("2026-05-02T10:00:00+00:00"),
        "event_count": 5,
    }
    assert totals["c2"]["purchase_count"] == 0
    assert totals["c2"]["revenue_total"] == 0
    assert totals["c2"]["first_purchase_at"] is None
    assert totals["c2"]["last_login_at"] == at("2026-06-01T08:00:00+00:00")
    assert totals["c2"]["event_count"] == 1

    second = write(
        tmp_path / "second.csv",
        header + "c1,purchase,2026-01-05T10:00:00Z,5\n"  # earlier than the first purchase
        "c1,message_clicked,2026-06-01T10:00:00Z,\n"
        "c2,purchase,2026-06-02T10:00:00Z,99.99\n"
        "c3,message_sent,2026-06-03T10:00:00Z,\n",
    )
    await import_file(store, settings, "events", second)
    await import_file(store, settings, "events", first)  # a re-run adds nothing

    totals = await rollups(store)
    assert totals["c1"]["first_purchase_at"] == at("2026-01-05T10:00:00+00:00")
    assert totals["c1"]["last_purchase_at"] == at("2026-05-01T10:00:00+00:00")
    assert totals["c1"]["purchase_count"] == 3
    assert totals["c1"]["revenue_total"] == 35.75
    assert totals["c1"]["last_click_at"] == at("2026-06-01T10:00:00+00:00")
    assert totals["c1"]["first_event_at"] == at("2026-01-05T10:00:00+00:00")
    assert totals["c1"]["event_count"] == 7
    assert totals["c2"]["first_purchase_at"] == at("2026-06-02T10:00:00+00:00")
    assert (totals["c2"]["purchase_count"], totals["c2"]["revenue_total"]) == (1, 99.99)
    assert totals["c2"]["event_count"] == 2
    assert totals["c3"]["last_message_at"] == at("2026-06-03T10:00:00+00:00")
    assert totals["c3"]["event_count"] == 1


async def test_rollups_of_a_large_file_in_many_batches_match_the_events(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    customers = [f"c{n}" for n in range(40)]
    await seed_customers(store, settings, tmp_path, *customers)
    kinds = ("purchase", "login", "page_view", "message_opened", "purchase", "message_sent")
    start = NOW - timedelta(days=30)
    events: list[tuple[str, str, datetime, float | None]] = []
    for n in range(12_000):
        kind = kinds[n % len(kinds)]
        # out of time order on purpose: later batches carry earlier events
        moment = start + timedelta(minutes=(n * 7919) % 40_000)
        value = round((n % 97) + 0.25, 2) if kind == "purchase" else None
        events.append((customers[(n * 13) % 40], kind, moment, value))
    body = "".join(f"{c},{k},{m.isoformat()},{'' if v is None else v}\n" for c, k, m, v in events)
    path = write(tmp_path / "big.csv", "customer_id,type,occurred_at,value\n" + body)
    batched = settings.model_copy(update={"imports": ImportSettings(batch_size=1_000)})

    report = await import_file(store, batched, "events", path)

    assert (report.read, report.inserted, report.rejected, report.held) == (12_000, 12_000, 0, 0)
    expected = expected_rollups(events)
    assert await rollups(store) == expected

    again = await import_file(store, batched, "events", path)
    assert (again.inserted, again.unchanged) == (0, 12_000)
    assert await rollups(store) == expected


async def test_future_events_are_stored_but_held_until_the_clock_reaches_them(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await seed_customers(store, settings, tmp_path, "c1")
    path = write(
        tmp_path / "e.csv",
        "customer_id,type,occurred_at,value\n"
        f"c1,purchase,{(NOW - timedelta(days=1)).isoformat()},10\n"
        f"c1,purchase,{NOW.isoformat()},1\n"  # exactly now: it has happened
        f"c1,purchase,{(NOW + timedelta(hours=1)).isoformat()},100\n"
        f"c1,login,{(NOW + timedelta(days=2)).isoformat()},\n",
    )
    report = await import_file(store, settings, "events", path)

    assert (report.inserted, report.held) == (4, 2)
    assert await count(store, Event) == 4, "future events are stored"
    assert await count(store, PendingRollup) == 2
    totals = (await rollups(store))["c1"]
    assert (totals["purchase_count"], totals["revenue_total"]) == (2, 11.0)
    assert totals["last_purchase_at"] == NOW
    assert totals["last_login_at"] is None
    assert (totals["event_count"], totals["last_event_at"]) == (2, NOW)

    # A re-import before their time neither counts nor holds them twice.
    again = await import_file(store, settings, "events", path)
    assert (again.inserted, again.held) == (0, 0)
    assert await count(store, PendingRollup) == 2

    frozen_clock.advance(timedelta(days=1))
    async with store.transaction() as session:
        counted = await roll_up_due_events(session, clock.now())
    assert counted == 1
    assert await count(store, PendingRollup) == 1
    totals = (await rollups(store))["c1"]
    assert (totals["purchase_count"], totals["revenue_total"]) == (3, 111.0)
    assert totals["last_purchase_at"] == NOW + timedelta(hours=1)
    assert totals["last_login_at"] is None
    assert totals["event_count"] == 3

    async with store.transaction() as session:
        assert await roll_up_due_events(session, clock.now()) == 0, "counted once only"
    assert (await rollups(store))["c1"]["event_count"] == 3

    frozen_clock.advance(timedelta(days=2))
    async with store.transaction() as session:
        assert await roll_up_due_events(session, clock.now()) == 1
    assert await count(store, PendingRollup) == 0
    totals = (await rollups(store))["c1"]
    assert totals["last_login_at"] == NOW + timedelta(days=2)
    assert (totals["event_count"], totals["purchase_count"]) == (4, 3)
    assert await count(store, Event) == 4


async def test_an_import_first_counts_the_held_events_that_came_due(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await seed_customers(store, settings, tmp_path, "c1", "c2")
    held = write(
        tmp_path / "future.csv",
        "customer_id,type,occurred_at,value\n"
        f"c1,purchase,{(NOW + timedelta(hours=6)).isoformat()},40\n",
    )
    assert (await import_file(store, settings, "events", held)).held == 1
    assert "c1" not in await rollups(store)

    frozen_clock.advance(timedelta(days=1))
    other = write(
        tmp_path / "other.csv",
        f"customer_id,type,occurred_at,value\nc2,login,{NOW.isoformat()},\n",
    )
    await import_file(store, settings, "events", other)

    totals = await rollups(store)
    assert (totals["c1"]["purchase_count"], totals["c1"]["revenue_total"]) == (1, 40.0)
    assert totals["c1"]["first_purchase_at"] == NOW + timedelta(hours=6)
    assert await count(store, PendingRollup) == 0
