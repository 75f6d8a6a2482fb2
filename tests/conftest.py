"""Shared fixtures: a fresh, migrated store on SQLite and on PostgreSQL.

Every database test takes ``store`` and runs twice, once per backend.
PostgreSQL comes from ``CADENCE_TEST_POSTGRES_URL`` (default: the local
server every development and CI machine runs). Each test session creates
its own database there and drops it at the end, so runs never see each
other's rows. Locally a missing server skips those tests with the reason;
with ``CI=true`` it fails them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from core import clock
from core.db import Store, create_engine
from core.migrations import upgrade
from core.models import Base
from core.settings import Settings

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
"""The frozen "now" of every test that uses the ``frozen_clock`` fixture."""


def _postgres_admin_url() -> str:
    return os.environ.get("CADENCE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


async def _migrate(url: str) -> None:
    store = Store(create_engine(url))
    try:
        await upgrade(store)
    finally:
        await store.close()


async def _administer(statement: str) -> None:
    """Run a statement that must not be in a transaction (CREATE/DROP DATABASE)."""
    engine = create_async_engine(_postgres_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def _create_postgres_database() -> str:
    """Create a uniquely named database; returns its URL."""
    name = f"cadence_test_{uuid.uuid4().hex[:12]}"
    await _administer(f'CREATE DATABASE "{name}"')
    return make_url(_postgres_admin_url()).set(database=name).render_as_string(hide_password=False)


async def _drop_postgres_database(url: str) -> None:
    await _administer(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to the latest schema."""
    try:
        url = asyncio.run(_create_postgres_database())
    except (OSError, Exception) as exc:  # asyncpg raises its own errors for refused logins
        reason = f"PostgreSQL at {_postgres_admin_url()} is not available: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL is required)")
        pytest.skip(reason)

    asyncio.run(_migrate(url))
    yield url
    asyncio.run(_drop_postgres_database(url))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies, instead of migrating again."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database: a copied SQLite file, or the session's
    PostgreSQL database with its tables emptied."""
    if request.param == "sqlite":
        path = tmp_path / "cadence.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")

    async def empty_tables() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                names = ", ".join(table.name for table in Base.metadata.sorted_tables)
                await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        finally:
            await engine.dispose()

    asyncio.run(empty_tables())
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Default settings pointed at the test database."""
    return Settings(database_url=database_url, settings_file=tmp_path / "cadence.toml")


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    """An empty, migrated store on each backend."""
    store = Store(create_engine(settings.database_url, settings.sqlite))
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def frozen_clock() -> Iterator[clock.FixedClock]:
    """Pin "now" to :data:`NOW` for the test."""
    with clock.using(clock.FixedClock(NOW)) as fixed:
        assert isinstance(fixed, clock.FixedClock)
        yield fixed


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (long sweeps) run only when ``-m slow`` asks for them, so the
    default run, which CI makes on every push, stays short."""
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="a long sweep: run with -m slow")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)
