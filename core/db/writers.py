"""SQLite writers take turns on a lock of their own before SQLite's.

SQLite lets one writer in at a time; the others wait in its busy handler,
which sleeps in growing steps (up to 100 ms) and checks again. Two busy
processes on one database (two delivery workers, a worker and the
planner) then spend most of their time asleep. Queueing first on an
``asyncio`` lock (writers in this process) and an exclusive ``flock`` on a
file next to the database (writers in other processes) hands the turn
over the moment it is free, so SQLite itself never sees a second writer.
Other programs that write the database without this lock are still safe:
SQLite's own locking remains underneath.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: writers of other processes fall back to SQLite's wait
    fcntl = None  # type: ignore[assignment]


class WriterTurns:
    """One writing transaction at a time, across the processes of one SQLite database."""

    def __init__(self, database: Path | None) -> None:
        self._local = asyncio.Lock()
        self._path = None if database is None else Path(f"{database}-writer.lock")
        self._descriptor: int | None = None

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        async with self._local:
            descriptor = self._lock_file()
            if descriptor is None or fcntl is None:
                yield
                return
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process writes: wait in a thread, not a poll
                await asyncio.get_running_loop().run_in_executor(
                    None, fcntl.flock, descriptor, fcntl.LOCK_EX
                )
            try:
                yield
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)

    def _lock_file(self) -> int | None:
        if self._descriptor is None and self._path is not None:
            try:
                self._descriptor = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # a read-only folder: SQLite's own locking still holds
                self._path = None
        return self._descriptor

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None
