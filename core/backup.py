"""``cadence db backup`` and ``cadence db restore``.

SQLite is copied with its online backup API: a consistent snapshot while workers keep
writing, into one self-contained file (rollback journal, not WAL, so no ``-wal`` file
belongs to it). The copy goes to a temporary name first and is checked before it takes
its real name, so a full disk or a crash never leaves a half backup under PATH.

A restore checks the backup (integrity, a schema revision this version knows) before
it writes anything, holds the node lock meanwhile (no ``cadence run`` may work on the
database while it is replaced) and copies the backup into the live file through the
same API. PostgreSQL is backed up with its own tools: :func:`postgres_guidance` says how.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory

from core.db import Store, normalise_url
from core.errors import CadenceError
from core.migrations import alembic_config, head_revision
from core.scheduler.leader import Leadership


@dataclass(frozen=True)
class BackupFile:
    """A checked SQLite backup: where it is, its size and its schema revision."""

    path: Path
    size: int
    revision: str | None


def backup_sqlite(store: Store, target: Path, *, force: bool = False) -> BackupFile:
    """Copy the store's SQLite database to ``target`` and check the copy."""
    source = _sqlite_file(store)
    if target.exists() and not force:
        raise CadenceError(f"{target} exists; choose another path or pass --force")
    if target.resolve() == source:
        raise CadenceError(f"{target} is the database itself; choose another path")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        with contextlib.closing(store.connect_sqlite()) as live, _open(partial) as copy:
            # One step: one read transaction, so one consistent moment; in WAL mode the
            # writers go on meanwhile (copying in steps would restart at each of their commits).
            live.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
        checked = _check(partial)
        os.replace(partial, target)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise CadenceError(f"the backup to {target} failed, nothing was written: {exc}") from exc
    return BackupFile(target, target.stat().st_size, checked)


async def restore_sqlite(store: Store, backup: Path) -> BackupFile:
    """Replace the store's SQLite database with ``backup``, once it passed its check."""
    _sqlite_file(store)
    checked = checked_backup(backup)
    leadership = Leadership(store)
    await leadership.try_acquire()  # refuses while a `cadence run` works on the database
    try:
        await store.reconnect()  # no pooled connection keeps a view of the old pages
        async with store.writer_turn():
            with (
                contextlib.closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as src,
                contextlib.closing(store.connect_sqlite()) as live,
            ):
                src.backup(live)
    except sqlite3.Error as exc:
        raise CadenceError(f"the restore from {backup} failed: {exc}") from exc
    finally:
        await leadership.release()
    return checked


def checked_backup(backup: Path) -> BackupFile:
    """``backup`` as a restore may use it, or the reason it may not."""
    if not backup.is_file():
        raise CadenceError(f"{backup} is not a file")
    revision = _check(backup)
    return BackupFile(backup, backup.stat().st_size, revision)


def postgres_guidance(database_url: str, path: Path) -> str:
    """How to back up and restore the PostgreSQL database with ``pg_dump``/``pg_restore``
    (the password, if any, masked: give it in ``PGPASSWORD`` or ``~/.pgpass``)."""
    url = normalise_url(database_url).set(drivername="postgresql")
    libpq = url.render_as_string(hide_password=True)
    return (
        "PostgreSQL is backed up with its own tools (a consistent snapshot while Cadence "
        "runs):\n"
        f"  pg_dump --format=custom --file {path} '{libpq}'\n"
        "Restore into an empty database, then bring the schema up to date:\n"
        f"  pg_restore --no-owner --exit-on-error --dbname '{libpq}' {path}\n"
        "  cadence db upgrade"
    )


def _sqlite_file(store: Store) -> Path:
    database = store.database_file
    if database is None:
        raise CadenceError("only a SQLite database in a file can be backed up this way")
    return database


def _open(path: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(path, isolation_level=None))


def _check(path: Path) -> str | None:
    """The backup's schema revision, after SQLite found every page sound and the revision
    is one this version of Cadence can run or upgrade."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as copy:
            verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {row[0] for row in copy.execute("SELECT name FROM sqlite_master")}
            revision = (
                copy.execute("SELECT version_num FROM alembic_version").fetchone()
                if "alembic_version" in tables
                else None
            )
    except sqlite3.DatabaseError as exc:
        raise CadenceError(f"{path} is not a Cadence SQLite database: {exc}") from exc
    if verdict != "ok":
        raise CadenceError(f"{path} is damaged: {verdict}")
    if revision is None:
        raise CadenceError(f"{path} holds no Cadence schema")
    scripts = ScriptDirectory.from_config(alembic_config())
    known = {script.revision for script in scripts.walk_revisions()}
    if revision[0] not in known:
        raise CadenceError(
            f"{path} is at schema {revision[0]}, which this version does not know "
            f"(latest {head_revision()}): restore it with the version that wrote it"
        )
    return str(revision[0])
