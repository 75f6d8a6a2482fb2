"""Demo data: deterministic, and every lifecycle stage of the default program is populated."""

from __future__ import annotations

import shutil
import tomllib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.db import Store, create_engine
from core.demo_data import generate, load_demo_data
from core.models import Customer, CustomerRollup, Event
from core.settings import Settings
from tests.conftest import NOW

EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
CUSTOMERS = 300
DAYS = 365
SEED = 11
SMALL = 150
SMALL_DAYS = 200

Dump = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rejects file, should demo data ever produce one, lands in the test's folder."""
    monkeypatch.chdir(tmp_path)


async def dump(store: Store) -> Dump:
    """Customers and their events by external id: what must be the same run after run."""
    async with store.reading() as session:
        customers = [
            tuple(row)
            for row in await session.execute(
                select(
                    Customer.external_id,
                    Customer.email,
                    Customer.phone,
                    Customer.name,
                    Customer.locale,
                    Customer.time_zone,
                    Customer.birthday,
                    Customer.registered_at,
                    Customer.attributes,
                    Customer.consent_email,
                    Customer.consent_sms,
                    Customer.consent_push,
                ).order_by(Customer.external_id)
            )
        ]
        events = [
            tuple(row)
            for row in await session.execute(
                select(
                    Customer.external_id,
                    Event.occurred_at,
                    Event.type,
                    Event.value,
                    Event.properties,
                    Event.source,
                )
                .join(Customer, Customer.id == Event.customer_id)
                .order_by(Customer.external_id, Event.occurred_at, Event.type, Event.dedupe_key)
            )
        ]
    return customers, events


def test_generate_is_deterministic() -> None:
    first = list(generate(50, 120, 5, NOW))
    again = list(generate(50, 120, 5, NOW))
    other_seed = list(generate(50, 120, 6, NOW))
    assert first == again
    assert first != other_seed
    # A later "now" shifts the whole history, so a run today equals a run replayed later.
    later = NOW + timedelta(days=10)
    shifted = list(generate(50, 120, 5, later))
    assert [c.external_id for c in shifted] == [c.external_id for c in first]
    for customer in first:
        times = [occurred_at for _, occurred_at, _, _ in customer.events]
        assert times == sorted(times)
        for occurred_at in times:
            assert EPOCH_UTC + occurred_at * MICROSECOND <= NOW
            assert EPOCH_UTC + occurred_at * MICROSECOND >= NOW - timedelta(days=121)


async def test_loading_is_deterministic_across_stores_and_idempotent(
    store: Store,
    settings: Settings,
    frozen_clock: clock.FixedClock,
    sqlite_template: Path,
    tmp_path: Path,
) -> None:
    customer_report, event_report = await load_demo_data(
        store, settings, customers=SMALL, days=SMALL_DAYS, seed=SEED
    )
    assert customer_report.inserted == SMALL
    assert customer_report.rejected == event_report.rejected == 0
    assert event_report.inserted == event_report.read > SMALL * 20
    first = await dump(store)
    assert len(first[0]) == SMALL
    assert len(first[1]) == event_report.inserted

    # The same seed into a fresh SQLite store gives the same rows (on the PostgreSQL run,
    # this also shows that both backends store demo data identically).
    path = tmp_path / "second.db"
    shutil.copy(sqlite_template, path)
    second_settings = Settings(
        database_url=f"sqlite+aiosqlite:///{path}", settings_file=tmp_path / "cadence.toml"
    )
    second = Store(create_engine(second_settings.database_url, second_settings.sqlite))
    try:
        await load_demo_data(second, second_settings, customers=SMALL, days=SMALL_DAYS, seed=SEED)
        assert await dump(second) == first
    finally:
        await second.close()

    # Loading the same demo data again changes nothing.
    customer_again, event_again = await load_demo_data(
        store, settings, customers=SMALL, days=SMALL_DAYS, seed=SEED
    )
    assert customer_again.inserted == customer_again.updated == 0
    assert event_again.inserted == 0
    assert await dump(store) == first


def default_stage_names() -> list[str]:
    with (DEFAULT_CONFIG_DIR / "program" / "stages.toml").open("rb") as stream:
        program = tomllib.load(stream)
    return [stage["name"] for stage in program["stage"]]


def stages_of(
    rollups: dict[str, tuple[datetime | None, datetime | None, datetime | None]],
    activity: dict[str, list[datetime]],
    now: datetime,
) -> dict[str, set[str]]:
    """Customers per stage of the default program, computed from rollups and events."""
    new_since = now - timedelta(days=90)
    quiet_since = now - timedelta(days=60)
    stages: dict[str, set[str]] = {name: set() for name in default_stage_names()}
    for customer, (first_purchase, last_purchase, last_event) in rollups.items():
        if first_purchase is None:
            stages["registered"].add(customer)
        elif first_purchase >= new_since:
            stages["new"].add(customer)
        elif last_purchase is not None and last_purchase >= new_since:
            stages["active"].add(customer)
        if last_event is None or last_event < quiet_since:
            stages["inactive"].add(customer)
        moments = activity[customer]
        if any(
            later - earlier >= timedelta(days=60) and later >= now - timedelta(days=30)
            for earlier, later in pairwise(moments)
        ):
            stages["reactivated"].add(customer)
    return stages


async def test_every_lifecycle_stage_of_the_default_program_is_populated(
    store: Store, settings: Settings, frozen_clock: clock.FixedClock
) -> None:
    assert default_stage_names() == ["registered", "new", "active", "inactive", "reactivated"]
    await load_demo_data(store, settings, customers=CUSTOMERS, days=DAYS, seed=SEED)
    now = clock.now()
    async with store.reading() as session:
        rollups = {
            external_id: (first_purchase, last_purchase, last_event)
            for external_id, first_purchase, last_purchase, last_event in await session.execute(
                select(
                    Customer.external_id,
                    CustomerRollup.first_purchase_at,
                    CustomerRollup.last_purchase_at,
                    CustomerRollup.last_event_at,
                ).join(CustomerRollup, CustomerRollup.customer_id == Customer.id)
            )
        }
        activity: dict[str, list[datetime]] = defaultdict(list)
        for external_id, occurred_at in await session.execute(
            select(Customer.external_id, Event.occurred_at)
            .join(Customer, Customer.id == Event.customer_id)
            .order_by(Customer.external_id, Event.occurred_at)
        ):
            activity[external_id].append(occurred_at)
        personas = {
            external_id: attributes["persona"]
            for external_id, attributes in await session.execute(
                select(Customer.external_id, Customer.attributes)
            )
        }

    assert len(rollups) == CUSTOMERS, "every demo customer has a rollup row"
    for customer, (_, _, last_event) in rollups.items():
        assert last_event == activity[customer][-1], "the rollup agrees with the events"
        assert last_event <= now

    stages = stages_of(rollups, activity, now)
    sizes = {name: len(members) for name, members in stages.items()}
    for name, size in sizes.items():
        # At least 3% of customers in each stage, so segments and campaigns have an audience.
        assert size >= CUSTOMERS * 0.03, f"stage {name} has only {size} customers: {sizes}"

    # The personas behave as documented: lapsed customers are inactive, returners reactivated.
    for customer, persona in personas.items():
        if persona == "lapsed":
            assert customer in stages["inactive"], customer
        if persona == "returner":
            assert customer in stages["reactivated"], customer
            assert customer not in stages["inactive"], customer
        if persona == "browser":
            assert customer in stages["registered"], customer
