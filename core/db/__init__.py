"""Engine set-up and sessions for the store, on SQLite or PostgreSQL.

SQLite is configured for several writers: WAL (readers never block the
writer), foreign keys on, a busy timeout, and ``BEGIN IMMEDIATE`` for every
writing transaction so two writers queue on the lock instead of both
reading, then one failing or losing its update on commit. Reading sessions
begin deferred, so the console never holds the write lock.

A SQLite write that finds the disk full is rolled back by SQLite, leaving the
file as the last commit left it; it surfaces as :class:`DiskFull`, whose
message says so and what to do, instead of a driver traceback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from core.db.dialect import Backend
from core.db.writers import WriterTurns
from core.errors import CadenceError, ConfigError
from core.settings import Settings, SqliteSettings

_READ_ONLY = "cadence_read_only"


def normalise_url(database_url: str) -> URL:
    """Parse a database URL and pick Cadence's async driver for it.

    ``sqlite:///x.db`` and ``postgresql://...`` are accepted and mapped to
    aiosqlite and asyncpg; anything else is a configuration error.
    """
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise ConfigError(
            f"database_url {database_url!r} is not a database URL; use e.g. "
            "sqlite+aiosqlite:///cadence.db or postgresql+asyncpg://user@host/db"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    raise ConfigError(
        f"database_url uses {backend!r}; Cadence supports SQLite (sqlite+aiosqlite:///file.db) "
        "and PostgreSQL (postgresql+asyncpg://user@host/db)"
    )


class DiskFull(CadenceError):
    """The disk holding the SQLite database had no room for a write."""


def disk_full(error: BaseException, database: Path | None) -> DiskFull | None:
    """``error`` as :class:`DiskFull` when it is SQLite's "database or disk is full"."""
    original = error.orig if isinstance(error, DBAPIError) else error
    if not isinstance(original, sqlite3.Error):
        return None
    if original.sqlite_errorcode & 0xFF != sqlite3.SQLITE_FULL:
        return None
    return DiskFull(
        f"{database or 'the SQLite database'}: the disk is full, so the database cannot "
        "grow; free some space there (or move the database to a larger disk), then run "
        "the command again: the write that failed was rolled back and everything "
        "committed before it is kept"
    )


class Store:
    """The database: an async engine plus writing and reading sessions."""

    def __init__(self, engine: AsyncEngine, sqlite: SqliteSettings | None = None) -> None:
        self.engine = engine
        self.sqlite_tuning = sqlite or SqliteSettings()
        """The tuning ``engine`` was created with (SQLite only)."""
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(
            engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )
        self._writer_turns = (
            WriterTurns(_sqlite_file(engine)) if engine.dialect.name == "sqlite" else None
        )

    @property
    def database_file(self) -> Path | None:
        """The SQLite database's file; None on PostgreSQL and for an in-memory database."""
        return _sqlite_file(self.engine) if self.backend == "sqlite" else None

    @property
    def backend(self) -> Backend:
        name = self.engine.dialect.name
        return "postgresql" if name == "postgresql" else "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one writing transaction, committed on success.

        On SQLite, writers first take turns (see :mod:`core.db.writers`) rather than
        wait in SQLite's busy handler, which sleeps. A full disk raises :class:`DiskFull`.
        """
        try:
            async with self.writer_turn(), self._sessions() as session, session.begin():
                yield session
        except DBAPIError as error:
            if (full := disk_full(error, self.database_file)) is not None:
                raise full from error
            raise

    @asynccontextmanager
    async def writer_turn(self) -> AsyncIterator[None]:
        """This process's turn to write (SQLite; PostgreSQL needs no turns)."""
        if self._writer_turns is None:
            yield
            return
        async with self._writer_turns.turn():
            yield

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only; on SQLite it never takes the write lock."""
        async with self._read_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def pinned(self) -> AsyncIterator[PinnedConnection]:
        """One connection for a series of transactions that share temporary tables."""
        async with self.engine.connect() as connection:
            yield PinnedConnection(connection)

    def connect_sqlite(self) -> sqlite3.Connection:
        """A plain ``sqlite3`` connection to this SQLite store, tuned as the engine's are,
        in autocommit mode (the caller says BEGIN), usable from one thread at a time."""
        database = self.database_file
        if database is None:
            raise ConfigError(
                "delivery needs a SQLite database in a file; set database_url to "
                "sqlite+aiosqlite:///cadence.db (or another file)"
            )
        tuning = self.sqlite_tuning
        connection = sqlite3.connect(
            database,
            timeout=tuning.busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        for pragma in sqlite_pragmas(tuning):
            connection.execute(f"PRAGMA {pragma}")
        return connection

    async def reconnect(self) -> None:
        """Drop the pooled connections, so the next use opens fresh ones: after the database
        was away, a pooled connection may still point at what was there then."""
        await self.engine.dispose()

    async def close(self) -> None:
        await self.engine.dispose()
        if self._writer_turns is not None:
            self._writer_turns.close()


class PinnedConnection:
    """Writing and reading transactions, one after another, all on one connection.

    Temporary tables created with ``until="dropped"`` (see
    :func:`core.db.dialect.scratch_table`) stay visible from one of its
    transactions to the next; each transaction still commits on its own.
    """

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one writing transaction, committed on success."""
        async with self._session(read_only=False) as session:
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads (and temporary tables); on SQLite it never takes the write lock."""
        async with self._session(read_only=True) as session:
            yield session

    @asynccontextmanager
    async def _session(self, *, read_only: bool) -> AsyncIterator[AsyncSession]:
        # Execution options change the connection in place; "begin" below reads them.
        await self._connection.execution_options(**{_READ_ONLY: read_only})
        async with (
            AsyncSession(bind=self._connection, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session


def _sqlite_file(engine: AsyncEngine) -> Path | None:
    """The database file of a SQLite engine; None for an in-memory database."""
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve()


def open_store(settings: Settings, **engine_options: Any) -> Store:
    """Create the :class:`Store` that ``settings.database_url`` points at."""
    engine = create_engine(settings.database_url, settings.sqlite, **engine_options)
    return Store(engine, settings.sqlite)


def create_engine(
    database_url: str, sqlite: SqliteSettings | None = None, **engine_options: Any
) -> AsyncEngine:
    url = normalise_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, **engine_options)
    tuning = sqlite or SqliteSettings()
    engine = create_async_engine(
        url, connect_args={"timeout": tuning.busy_timeout_ms / 1000}, **engine_options
    )
    _configure_sqlite(engine, tuning)
    return engine


def sqlite_pragmas(tuning: SqliteSettings) -> tuple[str, ...]:
    """The PRAGMAs every connection to a SQLite store starts with."""
    return (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        f"busy_timeout={tuning.busy_timeout_ms}",
        f"cache_size=-{tuning.cache_size_mib * 1024}",
        "temp_store=MEMORY",
        f"mmap_size={tuning.mmap_size_mib * 1024 * 1024}",
    )


def _configure_sqlite(engine: AsyncEngine, tuning: SqliteSettings) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so "begin" below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in sqlite_pragmas(tuning):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
