"""Faults of the store itself (issue 9, scenarios 8-10), against real processes.

The database goes away in the middle of a run: on PostgreSQL a TCP proxy between the
``cadence`` process and the server closes every connection and refuses new ones (the
server stopped, as the process sees it); on SQLite another process holds the write lock
(``BEGIN EXCLUSIVE``). Delivery and the schedule wait and carry on: every customer gets
one message at the sink, at most one more per SMTP connection in flight, counted by
Message-ID, and the process finishes on its own or stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    func,
    insert,
    make_url,
    select,
)

from config import DEFAULT_CONFIG_DIR
from core.cli.store_commands import EXIT_REJECTED
from core.db import DiskFull, Store, create_engine
from core.db.direct import DirectConnection
from core.message_ids import message_id_domain, message_id_for
from core.migrations import alembic_config, current_revision, head_revision, upgrade
from core.models import CampaignRun, Customer, JobRun, OutboxMessage, SchedulerNode
from core.planner.launch import launch_campaign
from core.program import load_program
from core.settings import Settings
from core.sink import SmtpSink
from tests.channel_helpers import unused_port
from tests.conftest import NOW, _create_postgres_database, _drop_postgres_database
from tests.helpers import CADENCE, cadence_environment, run_cadence, run_process
from tests.outbox_world import queue_messages
from tests.planner_world import Person, add_campaign, add_people, add_segment, campaign_spec
from tests.test_cli import assert_one_line_error

CONNECTIONS = 8
QUEUED = 600
RATE_PER_SECOND = 100
"""Each process sends at most this many a second, so the outage starts mid-run."""
CUT_AFTER = 150
"""Messages at the sink when the database goes away."""
OUTAGES = [8, pytest.param(30, marks=pytest.mark.slow, id="30")]
"""Seconds the database is away: the scenario's 30 s under ``-m slow``, 8 s by default."""


class TcpProxy:
    """A loopback TCP proxy to ``target``: :meth:`cut` closes every connection through it
    and stops listening (connections are refused, as by a stopped server), :meth:`restore`
    listens on the same port again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._writers:
            writer.transport.abort()  # a reset, as a dead server's machine would send
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream))
        await asyncio.gather(_pump(reader, upstream), _pump(upstream_reader, writer))
        self._writers.difference_update((writer, upstream))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.transport.abort()


_LOCK_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
"""


class DatabaseCut:
    """Makes the test's database unreachable for a ``cadence`` process and back: the
    process gets :attr:`url`, which on PostgreSQL goes through a :class:`TcpProxy`."""

    def __init__(self, database_url: str) -> None:
        self._direct = make_url(database_url)
        self._proxy: TcpProxy | None = None
        if self._direct.get_backend_name() == "postgresql":
            self._proxy = TcpProxy(self._direct.host or "127.0.0.1", self._direct.port or 5432)
        self._holder: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        if self._proxy is not None:
            await self._proxy.restore()

    @property
    def url(self) -> str:
        if self._proxy is None:
            return self._direct.render_as_string(hide_password=False)
        proxied = self._direct.set(host="127.0.0.1", port=self._proxy.port)
        return proxied.render_as_string(hide_password=False)

    async def away(self) -> None:
        if self._proxy is not None:
            await self._proxy.cut()
            return
        self._holder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _LOCK_HOLDER,
            str(self._direct.database),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._holder.stdout is not None
        line = await asyncio.wait_for(self._holder.stdout.readline(), timeout=60)
        assert line.strip() == b"locked"

    async def back(self) -> None:
        if self._proxy is not None:
            await self._proxy.restore()
            return
        assert self._holder is not None and self._holder.stdin is not None
        self._holder.stdin.close()
        assert await asyncio.wait_for(self._holder.wait(), timeout=30) == 0
        self._holder = None

    async def close(self) -> None:
        if self._proxy is not None:
            await self._proxy.cut()
        if self._holder is not None and self._holder.returncode is None:
            self._holder.kill()
            await self._holder.wait()


@asynccontextmanager
async def _cut(database_url: str) -> AsyncIterator[DatabaseCut]:
    cut = DatabaseCut(database_url)
    await cut.start()
    try:
        yield cut
    finally:
        await cut.close()


def _quiet_program(folder: Path) -> Path:
    """The default program's stages and scores without its segments, campaigns and
    journeys: a node on it sends only what a test queues or launches."""
    folder.mkdir()
    for name in ("stages.toml", "scores.toml"):
        shutil.copy(DEFAULT_CONFIG_DIR / "program" / name, folder / name)
    for name in ("segments.toml", "campaigns.toml", "journeys.toml"):
        (folder / name).write_text("", encoding="utf-8")
    return folder


def _config(tmp_path: Path, database_url: str, sink: SmtpSink, api_port: int) -> Path:
    path = tmp_path / "cadence.toml"
    path.write_text(
        f"""
database_url = "{database_url}"
program_dir = "{_quiet_program(tmp_path / "program")}"
templates_dir = "{DEFAULT_CONFIG_DIR / "templates"}"

[sqlite]
# Writers give up on the lock after a second (not the default 30), so the worker's own
# waiting, not SQLite's busy handler, is what a short outage exercises.
busy_timeout_ms = 1000

[smtp]
host = "{sink.host}"
port = {sink.port}

[channels.email]
connections = {CONNECTIONS}
rate_per_second = {RATE_PER_SECOND}
burst = 20

[delivery]
lease_seconds = 120

[api]
port = {api_port}

[policy]
quiet_hours = "off"
""",
        encoding="utf-8",
    )
    return path


@asynccontextmanager
async def _running(config: Path, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``cadence ARGS`` running, its output piped; killed if the test leaves it running."""
    process = await asyncio.create_subprocess_exec(
        str(CADENCE),
        "--config",
        str(config),
        *args,
        env=cadence_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        await asyncio.sleep(0.05)


async def _outage_while_sending(
    cut: DatabaseCut,
    sink: SmtpSink,
    process: asyncio.subprocess.Process,
    seconds: float,
    before: Callable[[], Awaitable[object]] | None = None,
) -> int:
    """Take the database away once :data:`CUT_AFTER` messages arrived (and ``before`` ran),
    for ``seconds``; the process must stay up all along. Returns the messages that
    arrived meanwhile."""
    await _until(
        lambda: sink.stats().received >= CUT_AFTER or process.returncode is not None,
        60,
        "sending",
    )
    assert process.returncode is None, "it finished before the outage"
    if before is not None:
        await before()
    await cut.away()
    at_cut = sink.stats().received
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.returncode is None, "the process died while the database was away"
        await asyncio.sleep(0.2)
    arrived = sink.stats().received - at_cut
    await cut.back()
    return arrived


async def _sendable_ids(store: Store) -> list[int]:
    async with store.reading() as session:
        ids = await session.scalars(
            select(OutboxMessage.id).where(OutboxMessage.state != "control")
        )
    return list(ids)


async def _states(store: Store) -> dict[str, int]:
    async with store.reading() as session:
        rows = await session.execute(
            select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)
        )
    return {state: count for state, count in rows.all()}


async def _queue(store: Store) -> list[int]:
    ids = await add_people(store, [Person(f"q{number}") for number in range(QUEUED)], NOW)
    # Ad hoc: no schedule of its own, so a node never plans it again.
    campaign = await add_campaign(store, campaign_spec("offer", "everyone", kind="ad_hoc"), NOW)
    return await queue_messages(store, campaign, sorted(ids.values()), NOW)


def _messages(stderr: bytes) -> list[str]:
    """The log lines' messages: JSON lines (``cadence run``) or plain ones (warnings of
    ``cadence deliver``, which logs through Python's last-resort handler)."""
    lines = []
    for line in stderr.decode().splitlines():
        try:
            lines.append(str(json.loads(line)["message"]))
        except (ValueError, KeyError, TypeError):
            lines.append(line)
    return lines


def _assert_waited_and_resumed(messages: list[str], part: str) -> None:
    assert any(f"database unavailable; {part} waits and retries" in m for m in messages), messages
    assert any(m.startswith("database back after") and part in m for m in messages), messages


def _assert_everyone_once(
    sink: SmtpSink,
    settings: Settings,
    rows: list[int],
    arrived: int,
    record_property: Callable[[str, object], None],
) -> None:
    """Every outbox row in ``rows`` reached the sink, at most one more time per connection
    (by Message-ID), and at most one message per connection while the database was away."""
    stats = sink.stats()
    record_property("arrived_during_outage", arrived)
    record_property("duplicates", stats.duplicates)
    # The connections wait for the store to record what the server accepted: at most one
    # message each gets through while it is away.
    assert arrived <= CONNECTIONS
    domain = message_id_domain(settings.channels.email)
    assert set(sink.message_ids) == {message_id_for(row, domain) for row in rows}
    assert stats.duplicates <= CONNECTIONS


@pytest.mark.parametrize("outage", OUTAGES)
async def test_delivery_waits_out_a_lost_database_and_sends_everyone_once(
    store: Store,
    settings: Settings,
    tmp_path: Path,
    outage: float,
    record_property: Callable[[str, object], None],
) -> None:
    queued = await _queue(store)
    started = time.monotonic()
    async with SmtpSink() as sink, _cut(settings.database_url) as cut:
        config = _config(tmp_path, cut.url, sink, unused_port())
        async with _running(config, "deliver", "--until-idle", "--no-api") as process:
            arrived = await _outage_while_sending(cut, sink, process, outage)
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)

    record_property("seconds", round(time.monotonic() - started, 1))
    assert process.returncode == 0, stderr.decode()
    _assert_everyone_once(sink, settings, queued, arrived, record_property)
    assert await _states(store) == {"sent": QUEUED}
    assert f"Sent {QUEUED} (email {QUEUED})" in stdout.decode()
    _assert_waited_and_resumed(_messages(stderr), "delivery")


async def _leader_beat_since(store: Store, moment: datetime) -> bool:
    async with store.reading() as session:
        node = await session.scalar(select(SchedulerNode))
    return node is not None and node.role == "leader" and node.heartbeat_at > moment


@pytest.mark.parametrize("outage", OUTAGES)
async def test_a_node_waits_out_a_lost_database_plans_what_came_due_and_sends_it_once(
    store: Store,
    settings: Settings,
    tmp_path: Path,
    outage: float,
    record_property: Callable[[str, object], None],
) -> None:
    queued = await _queue(store)
    later = await add_people(store, [Person(f"l{number}") for number in range(50)], NOW)
    await add_segment(store, "later", [later[f"l{number}"] for number in range(50)], NOW)
    templated = settings.model_copy(update={"templates_dir": DEFAULT_CONFIG_DIR / "templates"})

    async def launch() -> None:
        # Due in the middle of the outage: the leader's tick fails then, and plans it once
        # the database is back (the node plans on the wall clock).
        now = datetime.now(UTC)
        spec = campaign_spec("during", "later", kind="ad_hoc")
        program = load_program(tmp_path / "program")
        await launch_campaign(
            store, program, templated, spec, now, at=now + timedelta(seconds=outage / 2)
        )

    started = time.monotonic()
    async with SmtpSink() as sink, _cut(settings.database_url) as cut:
        config = _config(tmp_path, cut.url, sink, unused_port())
        async with _running(config, "run") as process:
            arrived = await _outage_while_sending(cut, sink, process, outage, launch)
            back_at = datetime.now(UTC)
            await _until(lambda: sink.stats().distinct >= QUEUED + 50, 120, "delivery")
            for _ in range(200):
                if await _leader_beat_since(store, back_at):
                    break
                await asyncio.sleep(0.1)
            assert await _leader_beat_since(store, back_at), "the node leads again"
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    record_property("seconds", round(time.monotonic() - started, 1))
    assert process.returncode == 0, stderr.decode()
    async with store.reading() as session:
        runs = (await session.scalars(select(CampaignRun.status))).all()
        running = await session.scalar(
            select(func.count()).select_from(JobRun).where(JobRun.status == "running")
        )
    assert sorted(runs) == ["planned", "planned"]  # the queued run and the launch, once
    assert running == 0  # every job run that started has its end recorded
    sendable = await _sendable_ids(store)
    assert len(sendable) == QUEUED + 50 and set(queued) <= set(sendable)
    _assert_everyone_once(sink, settings, sendable, arrived, record_property)
    assert await _states(store) == {"sent": len(sendable)}
    messages = _messages(stderr)
    _assert_waited_and_resumed(messages, "delivery")
    _assert_waited_and_resumed(messages, "the heartbeat")
    assert "leading the schedule" in messages and messages[-1] == "node stopped"


# --- 10: an upgrade keeps every row ------------------------------------------------------

ROWS_PER_TABLE = 20


def _previous_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config())
    previous = script.get_revision(head_revision()).down_revision
    assert isinstance(previous, str), "the head has one parent revision"
    return previous


def _value(column: Column[Any], row: int) -> Any:
    """A value for ``column`` in row ``row``, distinct per row (so unique keys hold), by
    the column's type as the database reports it."""
    kind = column.type
    if isinstance(kind, Boolean):
        return row % 2 == 0
    if isinstance(kind, Integer):  # SmallInteger and BigInteger too; SQLite's times
        return row + 1
    if isinstance(kind, Float | Numeric):
        return row + 0.25
    if isinstance(kind, DateTime):
        return datetime(2026, 1, 1, 12, tzinfo=None) + timedelta(hours=row)
    if isinstance(kind, Date):
        return date(2026, 1, 1) + timedelta(days=row)
    if isinstance(kind, JSON):
        return {"row": row, "column": column.name}
    if isinstance(kind, String):  # Text and VARCHAR(n)
        text = f"{column.name}-{row}"
        return text[-kind.length :] if kind.length else text
    raise AssertionError(f"no test value for {column.table.name}.{column.name}: {kind!r}")


def _rows(table: Table, filled: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """:data:`ROWS_PER_TABLE` rows of ``table``, each foreign key pointing at the row of
    the same number in the table it refers to (filled before it)."""
    rows = []
    for number in range(ROWS_PER_TABLE):
        row: dict[str, Any] = {}
        for column in table.columns:
            references = list(column.foreign_keys)
            if references:
                parent = references[0].column
                row[column.name] = filled[parent.table.name][number][parent.name]
            else:
                row[column.name] = _value(column, number)
        rows.append(row)
    return rows


def _contents(connection: Connection) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table but Alembic's, as the database returns them (no model
    types in between), in primary-key order."""
    metadata = MetaData()
    metadata.reflect(connection)
    contents = {}
    for table in metadata.sorted_tables:
        if table.name == "alembic_version":
            continue
        order = list(table.primary_key.columns) or list(table.columns)
        result = connection.execute(select(table).order_by(*order)).mappings()
        contents[table.name] = [dict(row) for row in result]
    return contents


def _fill(connection: Connection) -> dict[str, list[dict[str, Any]]]:
    metadata = MetaData()
    metadata.reflect(connection)
    filled: dict[str, list[dict[str, Any]]] = {}
    for table in metadata.sorted_tables:
        if table.name != "alembic_version":
            filled[table.name] = _rows(table, filled)
            connection.execute(insert(table), filled[table.name])
    return filled


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables: a new SQLite file, or a new PostgreSQL
    database on the test server, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'upgraded.db'}"
        return
    request.getfixturevalue("postgres_url")  # skips the test when there is no server
    url = asyncio.run(_create_postgres_database())
    try:
        yield url
    finally:
        asyncio.run(_drop_postgres_database(url))


async def test_an_upgrade_from_the_previous_schema_keeps_every_row(
    empty_database_url: str, record_property: Callable[[str, object], None]
) -> None:
    store = Store(create_engine(empty_database_url))
    try:
        await upgrade(store, _previous_revision())
        async with store.engine.begin() as connection:
            filled = await connection.run_sync(_fill)
        async with store.engine.connect() as connection:
            before = await connection.run_sync(_contents)
        await upgrade(store)
        assert await current_revision(store) == head_revision()
        async with store.engine.connect() as connection:
            after = await connection.run_sync(_contents)
    finally:
        await store.close()

    record_property("tables", len(before))
    record_property("rows", sum(len(rows) for rows in before.values()))
    assert set(filled) == set(before) and all(
        len(rows) == ROWS_PER_TABLE for rows in before.values()
    ), "every table of the previous schema was filled"
    for table, rows in before.items():
        assert table in after, f"the upgrade dropped {table}"
        assert len(after[table]) == len(rows), f"{table}: {len(rows)} rows before"
        for old, new in zip(rows, after[table], strict=True):
            # Columns the upgrade added come on top; every old value is still there.
            assert {name: new.get(name) for name in old} == old, table


# --- 9: a full disk -----------------------------------------------------------------------

IMPORTED = 20_000
BATCH = 2_000


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a tmpfs of its own, 1 MiB large (to grow with ``mount -o remount``);
    the test is skipped where mounting is not allowed (not root)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def _customers_file(path: Path, count: int, *, bad: int = 0) -> Path:
    """``count`` customers ``c0``... in file order, then ``bad`` rows with no id."""
    lines = ["customer_id,email,name"]
    lines += [f"c{n},c{n}@example.com,Customer number {n} of a file too big" for n in range(count)]
    lines += [f",nobody{n}@example.com,No id" for n in range(bad)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _check_sqlite(path: Path) -> tuple[str, list[str]]:
    """``PRAGMA integrity_check`` of the database at ``path``, and its customers' ids in
    the order they were stored."""
    connection = sqlite3.connect(path)
    try:
        [(integrity,)] = connection.execute("PRAGMA integrity_check").fetchall()
        ids = [
            row[0] for row in connection.execute("SELECT external_id FROM customers ORDER BY id")
        ]
    finally:
        connection.close()
    return integrity, ids


def _import_config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "import.toml"
    path.write_text(
        f'database_url = "{database_url}"\n\n[imports]\nbatch_size = {BATCH}\n', encoding="utf-8"
    )
    return path


async def test_a_full_disk_under_the_sqlite_database_stops_an_import_cleanly(
    tiny_disk: Path,
    tmp_path: Path,
    sqlite_template: Path,
    record_property: Callable[[str, object], None],
) -> None:
    database = tiny_disk / "cadence.db"
    shutil.copy(sqlite_template, database)
    config = _import_config(tmp_path, f"sqlite+aiosqlite:///{database}")
    source = _customers_file(tmp_path / "customers.csv", IMPORTED)

    full = await run_cadence(config, "import", "customers", str(source))

    assert full.returncode == 1, full.stdout + full.stderr
    assert_one_line_error(full, "the disk is full", "free some space", "run the command again")
    integrity, stored = _check_sqlite(database)
    record_property("stored_when_full", len(stored))
    assert integrity == "ok"
    # Whole batches or nothing: the batch that met the full disk left no row behind.
    assert len(stored) < IMPORTED and len(stored) % BATCH == 0
    assert stored == [f"c{n}" for n in range(len(stored))]

    grown = await run_process("mount", "-o", "remount,size=64m", str(tiny_disk))
    assert grown.returncode == 0, grown.stderr
    again = await run_cadence(config, "import", "customers", str(source))

    assert again.returncode == 0, again.stdout + again.stderr
    integrity, stored = _check_sqlite(database)
    assert integrity == "ok" and stored == [f"c{n}" for n in range(IMPORTED)]


async def test_a_full_disk_under_a_delivery_record_is_the_same_clear_error(
    tiny_disk: Path, sqlite_template: Path
) -> None:
    database = tiny_disk / "cadence.db"
    shutil.copy(sqlite_template, database)
    store = Store(create_engine(f"sqlite+aiosqlite:///{database}"))
    direct = DirectConnection(store)
    filler = "INSERT INTO audit_log (at, actor, action, summary) VALUES (0, 'test', 'fill', ?)"
    try:
        with pytest.raises(DiskFull, match="the disk is full"):
            for _ in range(100):  # 100 x 64 KiB: far more than the disk has
                await direct.write(filler, ("x" * 65536,))
    finally:
        await direct.close()
        await store.close()
    assert _check_sqlite(database)[0] == "ok"


async def test_a_rejects_file_on_a_full_disk_is_a_clear_error_and_a_rerun_completes(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    config = _import_config(tmp_path, settings.database_url)
    source = _customers_file(tmp_path / "customers.csv", 30, bad=3)

    full = await run_cadence(config, "import", "customers", str(source), "--rejects", "/dev/full")

    assert full.returncode == 1, full.stdout + full.stderr
    assert_one_line_error(
        full, "/dev/full: cannot write the rejects file", "pass --rejects with another path"
    )
    rejects = tmp_path / "rejects.jsonl"
    again = await run_cadence(config, "import", "customers", str(source), "--rejects", str(rejects))

    assert again.returncode == EXIT_REJECTED, again.stdout + again.stderr
    assert len(rejects.read_text(encoding="utf-8").splitlines()) == 3
    async with store.reading() as session:
        stored = list(await session.scalars(select(Customer.external_id)))
    assert sorted(stored) == sorted(f"c{n}" for n in range(30))
    if store.database_file is not None:
        assert _check_sqlite(store.database_file)[0] == "ok"
