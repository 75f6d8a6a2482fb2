"""Operations, as on-call runs them: ``cadence check`` in a real process on both databases
(a healthy store exits 0; each thing that should page makes it exit 4, named), and
``cadence db backup`` / ``cadence db restore`` (SQLite through the online backup API;
PostgreSQL through the ``pg_dump`` and ``pg_restore`` commands Cadence prints)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, insert, make_url, select, update

from core import clock
from core.cli import cli
from core.cli import ops_commands as _registered  # noqa: F401 - adds the commands to `cli`
from core.db import Store, create_engine
from core.errors import CadenceError
from core.models import Customer, OutboxMessage, OutboxSend
from core.scheduler.records import write_heartbeat
from core.settings import Settings
from tests.conftest import NOW, _administer
from tests.helpers import run_process
from tests.outbox_world import queue_messages
from tests.planner_world import Person, add_campaign, add_people, campaign_spec

EXIT_UNHEALTHY = 4
# The commands on `cadence` in a process, whether or not core/cli/__init__.py imports them.
ENTRY = "import core.cli.ops_commands; from core.cli import main; main()"


def _in_process(database_url: str, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """``cadence ARGS`` through click in this process (a process start costs seconds on a
    busy machine); a :class:`CadenceError` becomes exit 1 and its message, as ``main``
    prints it."""
    runner = CliRunner()
    with clock.using(clock.FixedClock(NOW)):  # --now installs a clock: restore ours after
        result = runner.invoke(
            cli, [*args, "--now", NOW.isoformat()], env={"CADENCE_DATABASE_URL": database_url}
        )
    if isinstance(result.exception, CadenceError):
        return subprocess.CompletedProcess(args, 1, result.stdout, f"error: {result.exception}")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, "")


async def _cadence(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_in_process, database_url, args)


async def _cadence_process(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``cadence ARGS`` in a process of its own, as a monitor or a cron job runs it."""
    argv = (sys.executable, "-c", ENTRY, *args, "--now", NOW.isoformat())
    return await run_process(*argv, env={"CADENCE_DATABASE_URL": database_url})


async def _shell(command: str) -> None:
    """Run ``command`` as a shell runs a line pasted from the guidance."""
    process = await asyncio.create_subprocess_shell(command, stdin=subprocess.DEVNULL)
    assert await asyncio.wait_for(process.wait(), timeout=120) == 0, command


async def _check(database_url: str, *options: str) -> tuple[int, dict[str, dict[str, object]]]:
    result = await _cadence(database_url, "check", "--json", *options)
    assert result.stderr == "", result.stderr
    (line,) = result.stdout.splitlines()
    report = json.loads(line)
    assert report["ok"] == (result.returncode == 0)
    return result.returncode, {check["name"]: check for check in report["checks"]}


async def _world(store: Store, people: int = 20) -> list[int]:
    ids = await add_people(store, [Person(f"c{number}") for number in range(people)], NOW)
    campaign = await add_campaign(store, campaign_spec("offer", "everyone"), NOW)
    return await queue_messages(store, campaign, sorted(ids.values()), NOW)


async def test_a_healthy_store_passes_every_check(store: Store, settings: Settings) -> None:
    await _world(store)
    with clock.using(clock.FixedClock(NOW - timedelta(seconds=4))):
        await write_heartbeat(store, "node-a", "leader", NOW - timedelta(hours=1), {})

    status, checks = await _check(settings.database_url)

    assert status == 0
    assert list(checks) == ["database", "schema", "leases", "queue", "heartbeat"]
    assert {check["status"] for check in checks.values()} == {"ok"}
    assert checks["queue"]["value"] == 20  # due now, waiting 0 s
    assert checks["heartbeat"]["value"] == 4.0
    # A limit on the queue's depth makes the same 20 messages page.
    status, checks = await _check(settings.database_url, "--max-due", "19")
    assert status == EXIT_UNHEALTHY and checks["queue"]["status"] == "fail"
    assert "more than 19" in str(checks["queue"]["detail"])


async def test_stuck_leases_a_stalled_queue_and_no_leader_each_fail(
    store: Store, settings: Settings
) -> None:
    queued = await _world(store)
    lease = timedelta(seconds=settings.delivery.lease_seconds)
    async with store.transaction() as session:
        # A worker that died 2 lease periods ago with 4 messages in hand; nobody took them.
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(queued[:4]))
            .values(state="sending", lease_owner="dead:1", next_attempt_at=NOW - 2 * lease)
        )
        # One of them it had sent, its send recorded and not yet folded into the row:
        # it went out, so it is not stuck.
        await session.execute(
            insert(OutboxSend).values(outbox_id=queued[3], sent_at=NOW - 2 * lease)
        )
        # The rest have been due for two hours.
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(queued[4:]))
            .values(due_at=NOW - timedelta(hours=2))
        )
    with clock.using(clock.FixedClock(NOW - timedelta(minutes=10))):
        await write_heartbeat(store, "gone", "leader", NOW - timedelta(days=1), {})

    status, checks = await _check(settings.database_url)

    assert status == EXIT_UNHEALTHY
    assert {name for name, check in checks.items() if check["status"] == "fail"} == {
        "leases",
        "queue",
        "heartbeat",
    }
    assert checks["leases"]["value"] == 3
    assert checks["queue"]["value"] == 16
    assert "the oldest for 2.0h (longer than 1.0h)" in str(checks["queue"]["detail"])
    assert "gone was last heard of 10m ago" in str(checks["heartbeat"]["detail"])
    # Without a scheduler in the deployment the heartbeat is not asked for.
    status, checks = await _check(settings.database_url, "--no-scheduler")
    assert status == EXIT_UNHEALTHY and "heartbeat" not in checks


async def test_a_schema_behind_the_code_and_a_database_away_fail(tmp_path: Path) -> None:
    empty = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    status, checks = await _check(empty)
    assert status == EXIT_UNHEALTHY
    assert checks["schema"]["status"] == "fail"
    assert "run `cadence db upgrade`" in str(checks["schema"]["detail"])

    away = "postgresql+asyncpg://postgres@127.0.0.1:1/cadence"  # nothing listens on port 1
    status, checks = await _check(away)
    assert status == EXIT_UNHEALTHY
    assert list(checks) == ["database"] and checks["database"]["status"] == "fail"

    table = await _cadence_process(away, "check")  # people read a table, not a traceback
    assert table.returncode == EXIT_UNHEALTHY and "Traceback" not in table.stderr
    assert "database" in table.stdout and "fail" in table.stdout


# ------------------------------------------------------------------- backup, restore


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store of its own (the backup commands are for SQLite only)."""
    from core.migrations import upgrade

    store = Store(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cadence.db'}"))
    try:
        await upgrade(store)
        yield store
    finally:
        await store.close()


async def _counts(store: Store) -> tuple[int, int]:
    async with store.reading() as session:
        customers = await session.scalar(select(func.count()).select_from(Customer))
        messages = await session.scalar(select(func.count()).select_from(OutboxMessage))
    return customers or 0, messages or 0


async def test_a_sqlite_backup_taken_while_writing_restores_every_row(
    tmp_path: Path, sqlite_store: Store
) -> None:
    store = sqlite_store
    url = str(store.engine.url)
    await _world(store, 500)
    backup = tmp_path / "backups" / "cadence-backup.db"
    backup.parent.mkdir()

    # A writer keeps committing while the backup runs: the copy is one consistent
    # moment (every row of some commit, none half-written).
    async def keep_writing() -> int:
        written = 0
        while not done.is_set():
            await add_people(store, [Person(f"w{written}")], NOW)
            written += 1
        return written

    done = asyncio.Event()
    writer = asyncio.create_task(keep_writing())
    taken = await _cadence_process(url, "db", "backup", str(backup))
    done.set()
    written = await writer
    assert taken.returncode == 0, taken.stderr
    assert f"Backed up to {backup}" in taken.stdout
    assert not backup.with_name(backup.name + ".partial").exists()
    with sqlite3.connect(backup) as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        customers_in_copy = copy.execute("SELECT count(*) FROM customers").fetchone()[0]
    assert 500 <= customers_in_copy <= 500 + written

    again = await _cadence(url, "db", "backup", str(backup))
    assert again.returncode == 1 and "exists; choose another path or pass --force" in again.stderr

    # Disaster: the outbox and most customers are gone.
    async with store.transaction() as session:
        await session.execute(delete(OutboxMessage))
        await session.execute(delete(Customer).where(Customer.id > 10))
    restored = await _cadence(url, "db", "restore", str(backup), "--yes")
    assert restored.returncode == 0, restored.stderr
    assert "Restored" in restored.stdout and "db upgrade" not in restored.stdout
    await store.reconnect()
    assert await _counts(store) == (customers_in_copy, 500)
    _, checks = await _check(url, "--no-scheduler")
    assert checks["schema"]["status"] == "ok"


async def test_a_restore_refuses_a_damaged_backup_and_a_running_node(
    tmp_path: Path, sqlite_store: Store
) -> None:
    store = sqlite_store
    url = str(store.engine.url)
    await _world(store, 5)
    backup = tmp_path / "good.db"
    assert (await _cadence(url, "db", "backup", str(backup))).returncode == 0
    damaged = tmp_path / "damaged.db"
    data = bytearray(backup.read_bytes())
    data[4096 * 2 : 4096 * 3] = b"\xff" * 4096  # a page of a table overwritten
    damaged.write_bytes(bytes(data))
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all " * 300)

    for bad, reason in ((damaged, "damaged"), (junk, "not a Cadence SQLite database")):
        result = await _cadence(url, "db", "restore", str(bad), "--yes")
        assert result.returncode == 1 and reason in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert await _counts(store) == (5, 5), "the database was not touched"

    # A `cadence run` node holds the database: the restore waits for it to stop.
    database = store.database_file
    assert database is not None
    lock = os.open(f"{database}.run-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(lock, b"4242")
        held = await _cadence(url, "db", "restore", str(backup), "--yes")
    finally:
        os.close(lock)
    assert held.returncode == 1 and "pid 4242" in held.stderr, held.stderr


async def test_postgresql_backups_follow_the_printed_pg_dump_and_pg_restore(
    postgres_url: str, tmp_path: Path
) -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore are not installed")
    name = f"cadence_backup_{uuid.uuid4().hex[:8]}"
    source = make_url(postgres_url).set(database=name)
    target = source.set(database=f"{name}_restored")
    for url in (source, target):
        await _administer(f'CREATE DATABASE "{url.database}"')
    try:
        source_url = source.render_as_string(hide_password=False)
        store = Store(create_engine(source_url))
        try:
            from core.migrations import upgrade

            await upgrade(store)
            await _world(store, 50)
            before = await _counts(store)
        finally:
            await store.close()
        dump = tmp_path / "cadence.dump"
        guidance = await _cadence(source_url, "db", "backup", str(dump))
        assert guidance.returncode == 1 and not dump.exists()
        lines = [line.strip() for line in guidance.stderr.splitlines()]
        pg_dump = next(line for line in lines if line.startswith("pg_dump "))
        pg_restore = next(line for line in lines if line.startswith("pg_restore "))
        assert "cadence db upgrade" in lines[-1]

        target_url = target.render_as_string(hide_password=False)
        plain = source.set(drivername="postgresql").render_as_string(hide_password=False)
        restore_into = target.set(drivername="postgresql").render_as_string(hide_password=False)
        await _shell(pg_dump)  # as printed
        assert dump.stat().st_size > 0
        await _shell(pg_restore.replace(plain, restore_into))  # into the empty database
        restored = Store(create_engine(target_url))
        try:
            assert await _counts(restored) == before
        finally:
            await restored.close()
        _, checks = await _check(target_url, "--no-scheduler")
        assert checks["schema"]["status"] == "ok" and checks["database"]["status"] == "ok"
    finally:
        for url in (source, target):
            await _administer(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
