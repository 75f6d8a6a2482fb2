"""``import customers``: CSV and JSONL upserts by external id, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import clock
from core.db import Store
from core.errors import CadenceError
from core.ingest import import_file
from core.models import AuditEntry
from core.settings import ImportSettings, Settings
from tests.conftest import NOW
from tests.helpers import customers, jsonl, rejects_of, write

PROFILE = (
    "external_id",
    "email",
    "phone",
    "name",
    "locale",
    "time_zone",
    "birthday",
    "registered_at",
    "attributes",
    "consent_email",
    "consent_sms",
    "consent_push",
    "created_at",
    "updated_at",
)


async def snapshot(store: Store) -> dict[str, dict[str, Any]]:
    """Every stored column of every customer (except the surrogate id), by external id."""
    found = await customers(store)
    return {key: {name: getattr(row, name) for name in PROFILE} for key, row in found.items()}


async def test_csv_creates_customers_with_every_profile_field(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = write(
        tmp_path / "customers.csv",
        "customer_id,email,phone,name,locale,time_zone,birthday,registered_at,"
        "consent_email,consent_sms,consent_push,tier\n"
        "c1,Ana.Silva@Example.COM,+351 912-345 678,Ana Silva,pt-PT,Europe/Lisbon,"
        "1990-05-17,2026-01-05T10:00:00+01:00,yes,no,1,gold\n"
        "c2,  bob@mail.example.org  , (0)22 123 4567 , Bob ,,,19850301,2025-12-31,"
        "TRUE,0,off,\n"
        "c3,,,,,,,,,,,\n",
    )
    report = await import_file(store, settings, "customers", path)

    assert (report.read, report.inserted, report.updated, report.unchanged) == (3, 3, 0, 0)
    assert report.rejected == 0
    assert rejects_of(Path(f"{path}.rejects.jsonl")) == [], "a clean import leaves no rejects"
    found = await customers(store)
    assert sorted(found) == ["c1", "c2", "c3"]

    ana = found["c1"]
    assert ana.email == "Ana.Silva@example.com", "domain lower-cased, local part kept"
    assert ana.phone == "+351912345678"
    assert ana.name == "Ana Silva"
    assert ana.locale == "pt-PT"
    assert ana.time_zone == "Europe/Lisbon"
    assert ana.birthday == date(1990, 5, 17)
    assert ana.registered_at == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert (ana.consent_email, ana.consent_sms, ana.consent_push) == (True, False, True)
    assert ana.attributes == {"tier": "gold"}
    assert ana.created_at == NOW
    assert ana.updated_at == NOW

    bob = found["c2"]
    assert bob.email == "bob@mail.example.org", "surrounding blanks are trimmed"
    assert bob.phone == "0221234567"
    assert bob.name == "Bob"
    assert bob.birthday == date(1985, 3, 1), "compact dates are accepted"
    assert bob.registered_at == datetime(2025, 12, 31, tzinfo=UTC)
    assert (bob.consent_email, bob.consent_sms, bob.consent_push) == (True, False, False)
    assert bob.attributes == {}, "an empty cell adds no attribute"

    bare = found["c3"]
    assert bare.email is None and bare.phone is None and bare.name is None
    assert (bare.consent_email, bare.consent_sms, bare.consent_push) == (None, None, None)
    assert bare.registered_at == NOW, "without registered_at a customer registers now"
    assert bare.attributes == {}


async def test_jsonl_creates_customers_with_typed_values_and_attributes(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = jsonl(
        tmp_path / "customers.jsonl",
        {
            "customer_id": "j1",
            "email": "Joe@EXAMPLE.pl",
            "name": "Joe",
            "consent_email": True,
            "consent_sms": False,
            "consent_push": "yes",
            "registered_at": "2026-03-01T08:30:00Z",
            "attributes": {"tier": "silver", "tags": ["a", "b"]},
            "score": 42,
            "vip": False,
        },
        {"customer_id": 1234, "email": None, "attributes": None},
    )
    report = await import_file(store, settings, "customers", path)

    assert (report.read, report.inserted, report.rejected) == (2, 2, 0)
    found = await customers(store)
    joe = found["j1"]
    assert joe.email == "Joe@example.pl"
    assert (joe.consent_email, joe.consent_sms, joe.consent_push) == (True, False, True)
    assert joe.registered_at == datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    assert joe.attributes == {"tier": "silver", "tags": ["a", "b"], "score": 42, "vip": False}
    numeric = found["1234"]
    assert numeric.email is None
    assert numeric.attributes == {}


async def test_times_without_offset_are_read_in_the_configured_zone(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    lisbon = settings.model_copy(update={"time_zone": "Europe/Lisbon"})
    path = write(
        tmp_path / "c.csv",
        "customer_id,registered_at\n"
        "summer,2026-07-01T10:00:00\n"
        "winter,2026-01-15 10:00\n"
        "explicit,2026-07-01T10:00:00+00:00\n",
    )
    await import_file(store, lisbon, "customers", path)

    found = await customers(store)
    assert found["summer"].registered_at == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    assert found["winter"].registered_at == datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    assert found["explicit"].registered_at == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


async def test_upsert_updates_given_fields_and_keeps_what_a_row_leaves_empty(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    first = write(
        tmp_path / "first.csv",
        "customer_id,email,name,phone,consent_email,registered_at,tier,city\n"
        "c1,one@example.com,One,+48123456789,yes,2026-01-01,gold,Porto\n"
        "c2,two@example.com,Two,,no,2026-02-01,silver,\n",
    )
    await import_file(store, settings, "customers", first)
    before = await snapshot(store)

    frozen_clock.advance(timedelta(days=1))
    second = write(
        tmp_path / "second.csv",
        "customer_id,email,name,phone,consent_email,registered_at,tier,score\n"
        "c1,,Uno,,,,,7\n"  # only name changes; score is a new attribute
        "c2,two@example.com,Two,,no,2026-02-01,silver,\n"  # identical to what is stored
        "c3,three@example.com,Three,,,,,\n",
    )
    report = await import_file(store, settings, "customers", second)

    assert (report.read, report.inserted, report.updated, report.unchanged) == (3, 1, 1, 1)
    after = await snapshot(store)
    assert sorted(after) == ["c1", "c2", "c3"], "upserts never duplicate a customer"
    one = after["c1"]
    assert one["name"] == "Uno"
    assert one["email"] == "one@example.com"
    assert one["phone"] == "+48123456789"
    assert one["consent_email"] is True
    assert one["registered_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert one["attributes"] == {"tier": "gold", "city": "Porto", "score": "7"}
    assert one["created_at"] == NOW
    assert one["updated_at"] == NOW + timedelta(days=1)
    assert after["c2"] == before["c2"], "an identical row writes nothing, not even updated_at"
    assert after["c3"]["created_at"] == NOW + timedelta(days=1)
    assert after["c3"]["registered_at"] == NOW + timedelta(days=1)


async def test_jsonl_nulls_keep_values_and_attributes_merge_key_by_key(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await import_file(
        store,
        settings,
        "customers",
        jsonl(
            tmp_path / "a.jsonl",
            {"customer_id": "c1", "email": "a@example.com", "attributes": {"a": 1, "b": 2}},
        ),
    )
    report = await import_file(
        store,
        settings,
        "customers",
        jsonl(
            tmp_path / "b.jsonl",
            {"customer_id": "c1", "email": None, "name": "", "attributes": {"b": 3, "c": 4}},
        ),
    )
    assert report.updated == 1
    customer = (await customers(store))["c1"]
    assert customer.email == "a@example.com"
    assert customer.name is None
    assert customer.attributes == {"a": 1, "b": 3, "c": 4}


async def test_rows_for_one_customer_in_one_file_fold_into_one_row(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = write(
        tmp_path / "c.csv",
        "customer_id,email,name,tier,city\n"
        "c1,first@example.com,First,gold,\n"
        "c1,,Second,,Lisbon\n"
        "c1,third@example.com,,,\n",
    )
    report = await import_file(store, settings, "customers", path)

    assert report.rejected == 0
    found = await customers(store)
    assert list(found) == ["c1"]
    assert found["c1"].email == "third@example.com"
    assert found["c1"].name == "Second"
    assert found["c1"].attributes == {"tier": "gold", "city": "Lisbon"}


async def test_rows_for_one_customer_across_batches_fold_into_one_row(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    # Enough rows for several write batches: the last row meets a customer an earlier
    # batch stored, so it is an update of that row rather than a second insert.
    count = 6_000
    small = settings.model_copy(update={"imports": ImportSettings(batch_size=1_000)})
    body = "".join(f"c{n},c{n}@example.com,,\n" for n in range(1, count))
    path = write(
        tmp_path / "c.csv",
        "customer_id,email,tier,city\n"
        "c0,first@example.com,gold,\n"
        f"{body}"
        "c0,second@example.com,,Lisbon\n",
    )
    report = await import_file(store, small, "customers", path)

    assert (report.read, report.inserted, report.updated, report.rejected) == (
        count + 1,
        count,
        1,
        0,
    )
    found = await customers(store)
    assert len(found) == count
    assert found["c0"].email == "second@example.com"
    assert found["c0"].attributes == {"tier": "gold", "city": "Lisbon"}
    assert found["c5999"].email == "c5999@example.com"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_importing_the_same_file_twice_changes_nothing(
    store: Store,
    settings: Settings,
    tmp_path: Path,
    frozen_clock: clock.FixedClock,
    fmt: str,
) -> None:
    rows = [
        {
            "customer_id": f"c{n}",
            "email": f"User.{n}@Example.COM",
            "phone": "+351 912 345 678",
            "name": f"User {n}",
            "locale": "pl-PL",
            "time_zone": "Europe/Warsaw",
            "birthday": "1991-02-03",
            "registered_at": "2026-01-02T03:04:05.678901+02:00",
            "consent_email": "yes",
            "consent_sms": "0",
            "consent_push": "",
            "segment": "vip" if n % 2 else "",
        }
        for n in range(40)
    ]
    if fmt == "csv":
        header = ",".join(rows[0])
        body = "".join(",".join(row.values()) + "\n" for row in rows)
        path = write(tmp_path / "c.csv", f"{header}\n{body}")
    else:
        path = jsonl(tmp_path / "c.jsonl", *rows)
    tiny = settings.model_copy(update={"imports": ImportSettings(batch_size=7)})

    first = await import_file(store, tiny, "customers", path)
    assert (first.inserted, first.updated, first.unchanged, first.rejected) == (40, 0, 0, 0)
    before = await snapshot(store)

    frozen_clock.advance(timedelta(hours=5))
    again = await import_file(store, tiny, "customers", path)

    assert (again.read, again.inserted, again.updated, again.unchanged) == (40, 0, 0, 40)
    assert again.rejected == 0
    assert await snapshot(store) == before, "nothing changed, updated_at included"


async def test_column_mapping_renames_file_columns(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    csv_path = write(
        tmp_path / "legacy.csv",
        "cust_no,mail,Tier\nL1,l1@example.com,bronze\nL2,l2@example.com,\n",
    )
    report = await import_file(
        store,
        settings,
        "customers",
        csv_path,
        mapping={"customer_id": "cust_no", "email": "mail"},
    )
    assert (report.inserted, report.rejected) == (2, 0)

    jsonl_path = jsonl(tmp_path / "legacy.jsonl", {"cust_no": "L3", "mail": "l3@example.com"})
    await import_file(
        store,
        settings,
        "customers",
        jsonl_path,
        mapping={"customer_id": "cust_no", "email": "mail"},
    )

    found = await customers(store)
    assert sorted(found) == ["L1", "L2", "L3"]
    assert found["L1"].email == "l1@example.com"
    assert found["L1"].attributes == {"Tier": "bronze"}
    assert found["L3"].email == "l3@example.com"
    assert found["L3"].attributes == {}, "mapped columns are fields, not attributes"


async def test_a_missing_id_column_names_it_and_suggests_a_mapping(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = write(tmp_path / "legacy.csv", "cust_no,email\nL1,l1@example.com\n")
    with pytest.raises(CadenceError) as caught:
        await import_file(store, settings, "customers", path)

    message = str(caught.value)
    assert "customer_id" in message
    assert "--map customer_id=" in message
    assert "cust_no" in message, "the message lists the columns the file has"
    assert await customers(store) == {}


async def test_an_email_domain_differing_only_in_case_is_no_change(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await import_file(
        store, settings, "customers", write(tmp_path / "a.csv", "customer_id,email\nc1,Ann@x.org\n")
    )
    report = await import_file(
        store, settings, "customers", write(tmp_path / "b.csv", "customer_id,email\nc1,Ann@X.ORG\n")
    )
    assert (report.updated, report.unchanged) == (0, 1)
    assert (await customers(store))["c1"].email == "Ann@x.org"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("yes", True),
        ("Y", True),
        ("true", True),
        ("T", True),
        ("1", True),
        ("on", True),
        ("no", False),
        ("N", False),
        ("FALSE", False),
        ("f", False),
        ("0", False),
        ("Off", False),
        ("", None),
    ],
)
async def test_consent_flags_are_parsed(
    store: Store,
    settings: Settings,
    tmp_path: Path,
    frozen_clock: clock.FixedClock,
    written: str,
    expected: bool | None,
) -> None:
    path = write(
        tmp_path / "c.csv",
        f"customer_id,consent_email,consent_sms,consent_push\nc1,{written},{written},{written}\n",
    )
    report = await import_file(store, settings, "customers", path)

    assert report.rejected == 0
    customer = (await customers(store))["c1"]
    assert (customer.consent_email, customer.consent_sms, customer.consent_push) == (
        expected,
        expected,
        expected,
    )


async def test_consent_can_be_withdrawn_and_an_unreadable_flag_is_rejected(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    await import_file(
        store,
        settings,
        "customers",
        write(tmp_path / "a.csv", "customer_id,consent_email\nc1,yes\nc2,yes\n"),
    )
    rejects = tmp_path / "rejects.jsonl"
    report = await import_file(
        store,
        settings,
        "customers",
        write(tmp_path / "b.csv", "customer_id,consent_email\nc1,no\nc2,maybe\n"),
        rejects_path=rejects,
    )

    assert (report.updated, report.rejected) == (1, 1)
    found = await customers(store)
    assert found["c1"].consent_email is False
    assert found["c2"].consent_email is True, "a rejected row changes nothing"
    [reject] = rejects_of(rejects)
    assert reject["line"] == 3
    assert "consent_email" in reject["reason"] and "maybe" in reject["reason"]
    assert reject["record"] == "c2,maybe"


async def test_each_import_is_recorded_in_the_audit_log(
    store: Store, settings: Settings, tmp_path: Path, frozen_clock: clock.FixedClock
) -> None:
    path = write(tmp_path / "c.csv", "customer_id,email\nc1,bad\nc2,ok@example.com\n")
    await import_file(store, settings, "customers", path)

    async with store.reading() as session:
        [entry] = (await session.execute(select(AuditEntry))).scalars().all()
    assert entry.action == "import.customers"
    assert entry.target == path
    assert entry.at == NOW
    assert entry.details is not None
    assert entry.details["inserted"] == 1
    assert entry.details["rejected"] == 1
    assert entry.details["rejects"] == f"{path}.rejects.jsonl"
    assert len(rejects_of(Path(f"{path}.rejects.jsonl"))) == 1
