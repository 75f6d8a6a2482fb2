"""A connection of the store's own, for a stream of tiny write transactions.

Delivery records every send in a transaction of its own, hundreds a second.
Through SQLAlchemy's async session each costs about 1.2 ms (measured: the
session, the greenlet bridge and three driver round trips), ten times what
SQLite needs for the write itself; driven through the database driver
(aiosqlite or asyncpg) it costs about 0.1 ms. The caller writes the SQL
per dialect, as the bulk paths in :mod:`core.db.bulk` do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import Store
from core.db.dialect import Backend


class DirectConnection:
    """One connection held open; :meth:`write` runs one statement in its own transaction.

    SQLite statements use ``?`` parameters, PostgreSQL ones ``$1``; times are
    passed as the dialect stores them (epoch microseconds on SQLite, naive UTC
    on PostgreSQL: see :class:`core.db.types.UtcDateTime`).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.backend: Backend = store.backend
        self._connection: AsyncConnection | None = None
        self._driver: Any = None

    async def write(self, sql: str, parameters: Sequence[Any]) -> int:
        """Run ``sql`` and commit; returns how many rows it changed."""
        driver = await self._driver_connection()
        if self.backend == "postgresql":
            async with driver.transaction():
                status: str = await driver.execute(sql, *parameters)
            return int(status.rpartition(" ")[2] or 0)  # e.g. "UPDATE 8"
        async with self.store.writer_turn():
            await driver.execute("BEGIN IMMEDIATE")
            try:
                cursor = await driver.execute(sql, parameters)
            except BaseException:
                await driver.execute("ROLLBACK")
                raise
            await driver.execute("COMMIT")
        changed: int = cursor.rowcount
        return changed

    async def _driver_connection(self) -> Any:
        if self._driver is None:
            self._connection = await self.store.engine.connect()
            raw = await self._connection.get_raw_connection()
            self._driver = raw.driver_connection
        return self._driver

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = self._driver = None
