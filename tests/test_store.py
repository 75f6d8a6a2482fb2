"""The store itself: migrations, time handling and SQLite's writer discipline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, select

from core.db import Store
from core.migrations import current_revision, head_revision, upgrade
from core.models import Base, Customer


async def test_schema_is_at_head_and_upgrade_is_idempotent(store: Store) -> None:
    assert await current_revision(store) == head_revision()
    await upgrade(store)
    assert await current_revision(store) == head_revision()


async def test_times_round_trip_as_aware_utc(store: Store) -> None:
    lisbon_summer = datetime(2026, 7, 1, 10, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
    async with store.transaction() as session:
        session.add(
            Customer(
                external_id="c1",
                registered_at=lisbon_summer,
                attributes={"tier": "gold"},
                created_at=lisbon_summer,
                updated_at=lisbon_summer,
            )
        )
    async with store.reading() as session:
        stored = (await session.execute(select(Customer))).scalar_one()
        later = (
            await session.execute(select(Customer.id).where(Customer.registered_at > lisbon_summer))
        ).all()
    assert stored.registered_at == lisbon_summer
    assert stored.registered_at.tzinfo == UTC
    assert stored.attributes == {"tier": "gold"}
    assert later == []


async def test_migrations_build_exactly_the_models(store: Store) -> None:
    """The models and the migrations describe the same schema on both databases."""

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        return list(compare_metadata(context, Base.metadata))

    async with store.engine.connect() as connection:
        diff = await connection.run_sync(differences)
    assert diff == []
