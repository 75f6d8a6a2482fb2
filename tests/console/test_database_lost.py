"""The console when the database goes away and comes back: a banner, no crash, and the
screens read again once it is back; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from core.db import Store
from core.settings import Settings
from tests.conftest import _administer
from tests.console.world import console_app, living_store


@asynccontextmanager
async def _database_away(store: Store, settings: Settings) -> AsyncIterator[None]:
    """The store's database unreachable inside the block: a SQLite file replaced by one
    that is not a database, a PostgreSQL database that refuses connections and has its
    open ones ended."""
    url = make_url(settings.database_url)
    await store.engine.dispose()  # nothing pooled: every read needs a new connection
    if store.backend == "sqlite":
        path = Path(str(url.database))
        aside = path.with_name(path.name + ".away")
        _swap(path, aside, b"not a database " * 100)
        try:
            yield
        finally:
            _swap(aside, path)
        return
    name = url.database
    await _administer(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    ended = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
    await _administer(f"{ended}'{name}'")  # the test's own database, named by the fixture
    try:
        yield
    finally:
        await _administer(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def _swap(path: Path, to: Path, leave: bytes | None = None) -> None:
    """Move ``path`` to ``to``, leaving ``leave`` in its place if given."""
    path.replace(to)
    if leave is not None:
        path.write_bytes(leave)


async def test_a_lost_database_raises_a_banner_and_the_console_recovers(
    store: Store, settings: Settings
) -> None:
    program = await living_store(store, settings)
    app = console_app(store, settings, program)
    async with app.run_test(size=(80, 24)) as pilot:

        async def reload() -> None:
            await pilot.press("r")
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()

        await reload()
        assert not app.screen.query("#database-banner")
        async with _database_away(store, settings):
            await reload()
            banners = app.screen.query("#database-banner")
            assert len(banners) == 1
            assert "Database unreachable, retrying" in str(banners.first().render())
            await reload()  # still away: still one banner, the app still runs
            assert len(app.screen.query("#database-banner")) == 1
        await reload()
        assert not app.screen.query("#database-banner")
        funnel = app.screen.query_one("#funnel")
        assert funnel.row_count == len(program.stages)  # type: ignore[attr-defined]
