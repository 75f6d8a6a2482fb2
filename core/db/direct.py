"""A connection of the store's own, for a stream of tiny write transactions.

Delivery records every send in a transaction of its own, hundreds a second.
Through SQLAlchemy's async session each costs about 1.2 ms (measured: the
session, the greenlet bridge and three driver round trips), ten times what
the write itself needs. On PostgreSQL the statement goes through asyncpg
directly; on SQLite a plain ``sqlite3`` connection on a thread of its own
runs BEGIN, the statement and COMMIT in one hand-over to that thread, where
aiosqlite would take three (each a wake-up of the event loop and a GIL
hand-over). The caller writes the SQL per dialect, as the bulk paths in
:mod:`core.db.bulk` do.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import Store, disk_full
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
        self._sqlite: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def write(self, sql: str, parameters: Sequence[Any]) -> int:
        """Run ``sql`` and commit; returns how many rows it changed."""
        if self.backend == "postgresql":
            driver = await self._driver_connection()
            async with driver.transaction():
                status: str = await driver.execute(sql, *parameters)
            return int(status.rpartition(" ")[2] or 0)  # e.g. "UPDATE 8"
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="cadence-direct")
        loop = asyncio.get_running_loop()
        async with self.store.writer_turn():
            try:
                return await loop.run_in_executor(self._thread, self._write_sqlite, sql, parameters)
            except sqlite3.Error as error:
                if (full := disk_full(error, self.store.database_file)) is not None:
                    raise full from error
                raise

    def _write_sqlite(self, sql: str, parameters: Sequence[Any]) -> int:
        # On the connection's own thread.
        if self._sqlite is None:
            self._sqlite = self.store.connect_sqlite()
        connection = self._sqlite
        connection.execute("BEGIN IMMEDIATE")
        try:
            changed = connection.execute(sql, parameters).rowcount
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return changed

    async def _driver_connection(self) -> Any:
        if self._driver is not None and self._driver.is_closed():
            # The server or the network closed it (a database outage): connect afresh.
            await self._drop_driver()
        if self._driver is None:
            self._connection = await self.store.engine.connect()
            raw = await self._connection.get_raw_connection()
            self._driver = raw.driver_connection
        return self._driver

    async def _drop_driver(self) -> None:
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None:
            await connection.invalidate()  # not back into the pool: it is dead
            await connection.close()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = self._driver = None
        if self._thread is not None:
            if self._sqlite is not None:
                await asyncio.get_running_loop().run_in_executor(self._thread, self._sqlite.close)
                self._sqlite = None
            self._thread.shutdown()
            self._thread = None
