"""Waiting out a database that is away, instead of stopping.

A PostgreSQL server that is stopped, restarting or cut off by the network,
and a SQLite file that another process keeps locked, are conditions that
pass: the workers and the scheduler of a long-running process wait, try
again with growing pauses and carry on where they were once the database
answers. :func:`database_away` tells those errors from faults in what was
asked (a constraint, a syntax error), which must still stop the work;
:class:`Outage` writes one log line when a part of the process starts
waiting and one when the database is back, not one per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

T = TypeVar("T")

FIRST_PAUSE_SECONDS = 0.5
LONGEST_PAUSE_SECONDS = 5.0
"""Short enough that work resumes within seconds of the database's return."""
_SERVER_GONE = frozenset({"57P01", "57P02", "57P03"})
"""PostgreSQL's admin shutdown, crash shutdown and "the database system is starting up"."""
_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH})


def database_away(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached now, rather than that the
    statement was wrong: a refused, reset or closed connection, a server shutting down or
    starting up, a SQLite database locked by another process."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        if error.orig is not None:  # SQLAlchemy's asyncpg adapter wraps the driver's own
            error = error.orig.__cause__ or error.orig
    if isinstance(error, sqlite3.OperationalError):
        return "is locked" in str(error)
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return True
    if isinstance(error, OSError):
        return error.errno in _UNREACHABLE
    sqlstate = getattr(error, "sqlstate", None)  # asyncpg's PostgreSQL errors
    if isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in _SERVER_GONE):
        return True  # class 08: connection exceptions
    return type(error).__name__ == "InterfaceError" and "connection is closed" in str(error)


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row (0 for the first):
    doubling from :data:`FIRST_PAUSE_SECONDS` to :data:`LONGEST_PAUSE_SECONDS`, +-20%
    jitter so the loops of several processes do not all return at the same moment."""
    pause = min(FIRST_PAUSE_SECONDS * 2.0 ** min(failures, 16), LONGEST_PAUSE_SECONDS)
    return pause * random.uniform(0.8, 1.2)


class Outage:
    """The log lines of one part of a process (delivery, the heartbeat, the schedule)
    while the database is away: one when it starts waiting, one when it is back.

    Several loops of that part may share it; each keeps its own count of failures for
    :func:`backoff`.
    """

    def __init__(self, logger: logging.Logger, waiting: str) -> None:
        self._logger = logger
        self._waiting = waiting
        self._since: float | None = None

    @property
    def away(self) -> bool:
        return self._since is not None

    def lost(self, error: BaseException) -> None:
        """An attempt failed with ``error`` (one :func:`database_away` accepts)."""
        if self._since is not None:
            return
        self._since = time.monotonic()
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        self._logger.warning(
            "database unavailable; %s waits and retries: %s",
            self._waiting,
            reason[:300],
            extra={"waiting": self._waiting},
        )

    def back(self) -> None:
        """An attempt got through: the database answers again (if it had been away)."""
        if self._since is None:
            return
        seconds = time.monotonic() - self._since
        self._since = None
        self._logger.warning(
            "database back after %.1f s; %s resumes",
            seconds,
            self._waiting,
            extra={"waiting": self._waiting, "seconds": round(seconds, 1)},
        )


async def until_back(action: Callable[[], Awaitable[T]], outage: Outage) -> T:
    """``action()``'s result, trying again with :func:`backoff` for as long as it fails
    because the database is away; any other error is raised at once.

    ``action`` runs again from its start, so it must be one transaction (or otherwise
    safe to repeat).
    """
    failures = 0
    while True:
        try:
            result = await action()
        except Exception as error:
            if not database_away(error):
                raise
            outage.lost(error)
            await asyncio.sleep(backoff(failures))
            failures += 1
            continue
        outage.back()
        return result


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
