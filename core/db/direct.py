"""A connection of the store's own, for a stream of tiny write transactions.

Delivery records every send in a transaction of its own, hundreds a second.
Through SQLAlchemy's async session each costs about 1.2 ms (measured: the
session, the greenlet bridge and three driver round trips), ten times what
the write itself needs. On PostgreSQL the statement goes through asyncpg
directly. On SQLite a plain ``sqlite3`` connection runs BEGIN, the statement
and COMMIT right on the event loop, about 0.1 ms: handed to a thread, each
commit waited about 0.9 ms for the hand-over and the GIL, and every SMTP
connection waits for its last send's commit (bench deliver: ratio 0.56-0.58
through a thread, 0.60-0.72 on the loop, alternating runs). Only when another
process holds the write lock does the transaction move to a thread of its
own, to wait there. The caller writes the SQL per dialect, as the bulk paths in
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


class _Busy(Exception):
    """The SQLite write lock is held elsewhere (another process)."""


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
        async with self.store.writer_turn():
            try:
                try:
                    return self._write_sqlite(sql, parameters, wait=False)
                except _Busy:
                    # Another process holds the write lock: wait for it off the event loop.
                    if self._thread is None:
                        self._thread = ThreadPoolExecutor(1, thread_name_prefix="cadence-direct")
                    return await asyncio.get_running_loop().run_in_executor(
                        self._thread, self._write_sqlite, sql, parameters, True
                    )
            except sqlite3.Error as error:
                if (full := disk_full(error, self.store.database_file)) is not None:
                    raise full from error
                raise

    def _write_sqlite(self, sql: str, parameters: Sequence[Any], wait: bool) -> int:
        """One transaction; without ``wait``, :class:`_Busy` at once if the lock is taken."""
        if self._sqlite is None:
            self._sqlite = self.store.connect_sqlite()
            # Its commits must stay short enough to run on the event loop: the store's
            # other connections do the checkpoints.
            self._sqlite.execute("PRAGMA wal_autocheckpoint=0")
            self._sqlite.execute("PRAGMA busy_timeout=0")
        connection = self._sqlite
        if wait:
            connection.execute(f"PRAGMA busy_timeout={self.store.sqlite_tuning.busy_timeout_ms}")
        try:
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if not wait and error.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                    raise _Busy from error
                raise
            try:
                changed = connection.execute(sql, parameters).rowcount
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            if wait:
                connection.execute("PRAGMA busy_timeout=0")
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
        if self._sqlite is not None:
            self._sqlite.close()  # no transaction is open between writes
            self._sqlite = None
        if self._thread is not None:
            self._thread.shutdown()
            self._thread = None
