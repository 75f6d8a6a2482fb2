"""Which ``cadence run`` process runs the schedule.

PostgreSQL: any number of nodes share the database; the leader is the one
holding a session-level advisory lock on a connection of its own. When the
leader dies, PostgreSQL ends its session and frees the lock, and the next
follower to try (every ``scheduler.leader_check_seconds``) takes over.

SQLite: the database is one machine's file and exactly one ``cadence run``
may hold it, through an exclusive ``flock`` on a file beside it; a second
one is refused at start with a message that says so.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import Store
from core.errors import CadenceError

try:
    import fcntl
except ImportError:  # Windows: nothing stops a second process but SQLite's own locking
    fcntl = None  # type: ignore[assignment]

_ADVISORY_KEY = 0x0CADE7CE
"""The advisory lock every node of one database competes for."""


class NodeAlreadyRunning(CadenceError):
    """Another ``cadence run`` holds this SQLite database."""


class Leadership:
    """This process's claim to run the schedule."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._connection: AsyncConnection | None = None
        self._descriptor: int | None = None
        self._unlocked = False
        """Leading an in-memory SQLite database, which no other process can open."""

    @property
    def is_leader(self) -> bool:
        return self._connection is not None or self._descriptor is not None or self._unlocked

    async def try_acquire(self) -> bool:
        """Become the leader if no one else is; True when this process leads."""
        if self.is_leader:
            return True
        if self.store.backend == "postgresql":
            return await self._try_advisory_lock()
        return self._try_file_lock()

    async def still_leader(self) -> bool:
        """Whether the lock is still held: on PostgreSQL its connection must still answer
        (a restarted server has forgotten it); False lets the schedule stop at once."""
        if self._connection is None:
            return self.is_leader
        try:
            await self._connection.execute(text("SELECT 1"))
        except (DBAPIError, SQLAlchemyError, OSError):
            await self._drop_connection()
            return False
        return True

    async def release(self) -> None:
        if self._connection is not None:
            # A session that is gone took the lock with it.
            with contextlib.suppress(DBAPIError, SQLAlchemyError, OSError):
                await self._connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_KEY}
                )
            await self._drop_connection()
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the file releases its flock
            self._descriptor = None
        self._unlocked = False

    async def _try_advisory_lock(self) -> bool:
        connection = await self.store.engine.connect()
        try:
            # Autocommit: a session-level lock outlives transactions, and an idle
            # transaction would hold back vacuum for as long as this node leads.
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            locked = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": _ADVISORY_KEY}
            )
        except BaseException:
            await connection.close()
            raise
        if not locked:
            await connection.close()
            return False
        self._connection = connection
        return True

    def _try_file_lock(self) -> bool:
        database = self.store.database_file
        if database is None or fcntl is None:
            self._unlocked = True
            return True
        path = Path(f"{database}.run-lock")
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 64).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise NodeAlreadyRunning(
                f"another `cadence run` (pid {holder}) already runs on {database}; "
                "stop it first (one node per SQLite database), or move to PostgreSQL to run "
                "several nodes"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, str(os.getpid()).encode())
        self._descriptor = descriptor
        return True

    async def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                await self._connection.close()
            except (DBAPIError, SQLAlchemyError, OSError):
                await self._connection.invalidate()
            self._connection = None
