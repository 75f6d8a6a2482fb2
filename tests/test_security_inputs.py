"""Bad and hostile input on both databases (issue 9, scenarios 17-19).

- Injection in report field names and options: refused before any SQL runs (no statement
  at all), and names that are looked up stay bound values; the tables stay as they were.
- A whole ``cadence run`` with every secret configured, driven over HTTP and SMTP and
  stopped with SIGTERM: no secret in its output nor in any table.
- The CSV and JSONL importers and ``POST /v1/events`` fuzzed with hypothesis: every input
  is imported or refused with a reason a user can act on, never a traceback or a 500,
  and nothing is left half-written.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import gc
import importlib
import io
import json
import re
import signal
import subprocess
import sys
import tempfile
import types
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import hypothesis
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, func, inspect, make_url, select, table
from starlette.applications import Starlette

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.api import create_app
from core.api.auth import token_hash
from core.cli import cli
from core.db import Store
from core.errors import CadenceError
from core.ingest import Kind, import_file
from core.ingest.customers import _KNOWN as CUSTOMER_FIELDS
from core.ingest.events import _KNOWN as EVENT_FIELDS
from core.models import Base, Customer, CustomerRollup, Event, PendingRollup
from core.program import load_program
from core.program.apply import apply_program
from core.settings import Settings
from tests.channel_helpers import unused_port
from tests.conftest import NOW
from tests.helpers import CADENCE, cadence_environment, write_bytes
from tests.planner_world import Person, add_campaign, add_people, add_segment, campaign_spec
from tests.polling import eventually

# --- 17: injection in report field names, options and looked-up names ----------------------

INJECTIONS = (
    "x; DROP TABLE customers",
    "coverage; DROP TABLE customers; --",
    "coverage' OR '1'='1",
    'coverage" --',
    "coverage) UNION SELECT email FROM customers --",
    "coverage\nDROP TABLE customers",
    "coverage/**/OR/**/1=1",
    "",
)

Statement = tuple[str, Any]


@contextmanager
def statements_run() -> Iterator[list[Statement]]:
    """Every SQL statement any engine of this process runs meanwhile, with its parameters."""
    seen: list[Statement] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def _settings_file(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "cadence.toml"
    path.write_text(
        f"""database_url = "{database_url}"
program_dir = "{DEFAULT_CONFIG_DIR / "program"}"
templates_dir = "{DEFAULT_CONFIG_DIR / "templates"}"
""",
        encoding="utf-8",
    )
    return path


def _cadence(config: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[Statement]]:
    """``cadence --config CONFIG ARGS`` through click in this process, and the statements it
    ran; a :class:`CadenceError` becomes exit 1 and its message, as ``main`` prints it."""
    runner = CliRunner()
    with statements_run() as seen, clock.using(clock.FixedClock(NOW)):
        result = runner.invoke(cli, ["--config", str(config), *args], env={"COLUMNS": "200"})
    if isinstance(result.exception, CadenceError):
        completed = subprocess.CompletedProcess(args, 1, result.stdout, str(result.exception))
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    else:
        completed = subprocess.CompletedProcess(args, result.exit_code, result.stdout, "")
    return completed, list(seen)


async def _tables(store: Store) -> dict[str, int]:
    """Every table the database holds, with its row count."""
    async with store.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    async with store.reading() as session:
        return {
            name: (
                await session.execute(select(func.count()).select_from(table(name)))
            ).scalar_one()
            for name in names
        }


async def _seed_for_reports(store: Store) -> None:
    people = await add_people(store, [Person(f"c{n}") for n in range(5)], NOW)
    await add_segment(store, "everyone", list(people.values()), NOW)
    await add_campaign(store, campaign_spec("spring-offer", "everyone"), NOW)


async def test_report_field_names_and_options_with_injections_are_refused_before_any_sql(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    await _seed_for_reports(store)
    config = _settings_file(tmp_path, database_url)
    before = await _tables(store)
    attempts: list[tuple[str, ...]] = [
        *(("report", "trends", "--kpi", text) for text in INJECTIONS),
        *(("report", "trends", "--until", f"2026-11-01{text}") for text in INJECTIONS[:-1]),
    ]
    for args in attempts:
        result, ran = await asyncio.to_thread(_cadence, config, *args)
        assert result.returncode == 1, (args, result)
        assert "is not a KPI name" in result.stderr or "as a day" in result.stderr, result
        assert "Traceback" not in result.stderr + result.stdout
        assert ran == [], (args, ran)  # refused before the store was opened
    # Options that are not what the command takes are click's usage errors, before too.
    for args in (
        ("report", "trends", "x; DROP TABLE customers"),
        ("report", "stages", "--format", "csv; DROP TABLE customers"),
        ("report", "stages", "--window-days", "30; DROP TABLE customers"),
        ("report", "program", "--sort", "name; DROP TABLE customers"),
    ):
        result, ran = await asyncio.to_thread(_cadence, config, *args)
        assert result.returncode == 2 and "Traceback" not in result.stdout, (args, result)
        assert ran == [], (args, ran)
    assert await _tables(store) == before


async def test_looked_up_names_with_injections_stay_bound_values(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    """Campaign and segment names are data: checked against the program's files before
    any SQL (segments), or sent to the database as parameters only (campaigns); either
    way the command says there is no such name and nothing changes."""
    await _seed_for_reports(store)
    config = _settings_file(tmp_path, database_url)
    before = await _tables(store)
    for text in INJECTIONS[:-1]:
        for command in (
            ("report", "campaign"),
            ("campaign", "show"),
            ("campaign", "pause"),
            ("segments", "show"),
        ):
            result, ran = await asyncio.to_thread(_cadence, config, *command, text)
            assert result.returncode == 1, (command, text, result)
            assert f"no campaign named `{text}`" in result.stderr or (
                f"no segment named `{text}` in the program" in result.stderr
            ), result
            for statement, _ in ran:
                assert text not in statement and "DROP" not in statement, statement
            assert not ran or any(text in parameters for _, parameters in ran), ran
    assert await _tables(store) == before


# --- 18: no secret in the logs of a whole `cadence run`, nor in the store ------------------

SMTP_USER = "cadence-mailer"
SMTP_PASSWORD = "smtp-pass-7e41c9d2b8"
API_TOKEN = "api-token-c05b7f2e91"
INGEST_TOKEN = "ingest-token-4d9a0e6f13"
LINK_SECRET = "link-secret-9b2f61d0ac"
WEBHOOK_SECRET = "webhook-secret-1f8e3c75"
SMS_TOKEN = "sms-token-62ad09e4"
DATABASE_PASSWORD = "db-pass-3a7c5e91"
"""Given in the PostgreSQL URL; the test server trusts loopback, so it is never asked for."""
SECRETS = (SMTP_PASSWORD, API_TOKEN, INGEST_TOKEN, LINK_SECRET, WEBHOOK_SECRET, SMS_TOKEN)
LINK = re.compile(r"http://127\.0\.0\.1:\d+/([uoc])/([A-Za-z0-9_.=-]+)")


class _Inbox:
    """aiosmtpd's handler and authenticator: takes mail only from the one SMTP login."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.logins = 0

    def authenticate(
        self, _server: SMTP, _session: Session, _envelope: Envelope, _mechanism: str, data: Any
    ) -> AuthResult:
        accepted = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        self.logins += accepted
        return AuthResult(success=accepted)

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.original_content, bytes)
        self.messages.append(envelope.original_content.decode())
        return "250 OK"


@asynccontextmanager
async def _authenticating_sink() -> AsyncIterator[tuple[_Inbox, int]]:
    """An SMTP server on a free loopback port that needs AUTH (:data:`SMTP_PASSWORD`)."""
    inbox = _Inbox()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(
            inbox,
            hostname="sink",
            authenticator=inbox.authenticate,
            auth_required=True,
            auth_require_tls=False,  # loopback only
        ),
        "127.0.0.1",
        0,
    )
    try:
        yield inbox, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _with_database_password(database_url: str) -> str:
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return database_url
    return url.set(password=DATABASE_PASSWORD).render_as_string(hide_password=False)


def _node_settings(tmp_path: Path, database_url: str, api_port: int, smtp_port: int) -> Path:
    """Every secret Cadence takes, some in the file and some in the environment
    (:func:`_node_environment`), none of them repeated anywhere else."""
    path = tmp_path / "node.toml"
    path.write_text(
        f"""database_url = "{_with_database_password(database_url)}"
program_dir = "{DEFAULT_CONFIG_DIR / "program"}"
templates_dir = "{DEFAULT_CONFIG_DIR / "templates"}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
username = "{SMTP_USER}"
timeout_seconds = 5

[api]
port = {api_port}
public_url = "http://127.0.0.1:{api_port}"
token = "{API_TOKEN}"
link_secret = "{LINK_SECRET}"
ingest_token_hashes = ["{token_hash(INGEST_TOKEN)}"]

[policy]
quiet_hours = "off"

[delivery]
idle_seconds = 0.1

[channels.file]
path = "{tmp_path / "outbox.jsonl"}"
""",
        encoding="utf-8",
    )
    return path


def _node_environment() -> dict[str, str]:
    return cadence_environment(
        CADENCE_SMTP__PASSWORD=SMTP_PASSWORD,
        CADENCE_CHANNELS__WEBHOOK__SECRET=WEBHOOK_SECRET,
        CADENCE_CHANNELS__SMS__TOKEN=SMS_TOKEN,
    )


async def _every_stored_value(store: Store) -> str:
    """Every value of every row of every table, as text."""
    parts: list[str] = []
    async with store.reading() as session:
        for stored in Base.metadata.sorted_tables:
            for row in (await session.execute(select(stored))).all():
                parts.extend(json.dumps(value, default=str) for value in row)
    return "\n".join(parts)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_a_whole_node_run_logs_and_stores_no_secret(
    store: Store, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    """A real ``cadence run`` takes events with the ingest token, plans and sends mail
    through an SMTP server that needs the password, serves clicks, a one-click
    unsubscribe and the bounce webhook (and refuses near-miss tokens), and stops on
    SIGTERM: none of the secrets, nor the link tokens it signed, reach its output."""
    people = "".join(f"{key},{key}@shop.example,yes\n" for key in ("alice", "bob", "carol"))
    customers_csv = tmp_path / "customers.csv"
    customers_csv.write_text("customer_id,email,consent_email\n" + people, encoding="utf-8")
    await import_file(store, settings, "customers", str(customers_csv))
    program = load_program(DEFAULT_CONFIG_DIR / "program", DEFAULT_CONFIG_DIR / "templates")
    await apply_program(store, program, clock.now())
    api_port = unused_port()
    base = f"http://127.0.0.1:{api_port}"
    ingest = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    webhook = {"Authorization": f"Bearer {API_TOKEN}"}
    now = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")  # the node runs on the wall clock
    nudge = {"page": "/features/reports"}  # the default program's feature-page nudge
    events: list[dict[str, Any]] = [
        {"customer_id": "alice", "type": "purchase", "occurred_at": now, "value": 42.5},
        {"customer_id": "bob", "type": "page_view", "occurred_at": now, "properties": nudge},
    ]
    async with _authenticating_sink() as (inbox, smtp_port):
        config = _node_settings(tmp_path, database_url, api_port, smtp_port)
        node = await asyncio.create_subprocess_exec(
            str(CADENCE),
            "--config",
            str(config),
            "run",
            env=_node_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        output = asyncio.create_task(node.communicate())
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:

                async def healthy() -> bool:
                    try:
                        return (await http.get("/healthz")).status_code == 200
                    except httpx.TransportError:
                        assert not output.done(), await output  # the node exited
                        return False

                await eventually(healthy, "the node answers /healthz", seconds=60)
                for token in (INGEST_TOKEN[:-1], API_TOKEN, f"{INGEST_TOKEN}x"):
                    wrong = {"Authorization": f"Bearer {token}"}
                    refused = await http.post("/v1/events", json={"events": events}, headers=wrong)
                    assert refused.status_code == 401
                answer = await http.post("/v1/events", json={"events": events}, headers=ingest)
                assert answer.status_code == 200, answer.text

                async def both_sent() -> bool:
                    return len(inbox.messages) >= 2

                await eventually(both_sent, "the receipt and the nudge arrive")
                links = [match for text in inbox.messages for match in LINK.findall(text)]
                kinds = {kind for kind, _ in links}
                assert {"c", "u"} <= kinds, inbox.messages
                for kind, token in links:
                    if kind == "c":
                        assert (await http.get(f"/c/{token}")).status_code == 302
                    elif kind == "u":
                        unsubscribed = await http.post(
                            f"/u/{token}", data={"List-Unsubscribe": "One-Click"}
                        )
                        assert unsubscribed.status_code == 200
                assert (await http.get(f"/c/{links[0][1][:-3]}")).status_code == 400
                bounce = {
                    "events": [
                        {"type": "bounce", "email": "carol@shop.example", "bounce_type": "hard"}
                    ]
                }
                near = {"Authorization": f"Bearer {API_TOKEN[:-1]}"}
                refused = await http.post("/v1/bounces", json=bounce, headers=near)
                assert refused.status_code == 401
                assert (await http.post("/v1/bounces", json=bounce, headers=webhook)).is_success
                assert (await http.get("/metrics")).status_code == 200
            node.send_signal(signal.SIGTERM)
            stdout, stderr = await asyncio.wait_for(output, timeout=60)
        finally:
            if node.returncode is None:
                node.kill()
                await node.wait()
    assert node.returncode == 0, stderr.decode()
    assert inbox.logins >= 1  # the password was used, so the node held it
    logs = stdout.decode() + stderr.decode()
    messages = [json.loads(line)["message"] for line in stderr.decode().splitlines()]
    for request in ('"POST /v1/events" 200', '"POST /v1/bounces" 401', '"GET /c/***" 302'):
        assert any(request in message for message in messages), request
    assert any('"POST /u/***" 200' in message for message in messages)
    assert messages[-1] == "node stopped"
    logs += "\n".join(messages)  # the JSON lines' text as a reader sees it, unescaped
    plain_login = base64.b64encode(f"\0{SMTP_USER}\0{SMTP_PASSWORD}".encode()).decode()
    tokens = [token for _, token in links]
    leaks = (*SECRETS, DATABASE_PASSWORD, plain_login, API_TOKEN[:-1], INGEST_TOKEN[:-1])
    for secret in (*leaks, *tokens, *(token.split(".")[-1] for token in tokens)):
        assert secret not in logs, secret
    stored = await _every_stored_value(store)
    assert "unsubscribed" in stored and "message_clicked" in stored  # the run was recorded
    for secret in (*leaks, token_hash(INGEST_TOKEN)):
        assert secret not in stored, secret


# --- 19: fuzzing the importers and the event API (hypothesis) -----------------------------

KNOWN_IDS = tuple(f"c{n}" for n in range(5))
"""Customers the store holds before any fuzzed input, so events of theirs are stored."""
COLUMNS: dict[Kind, tuple[str, ...]] = {
    "customers": tuple(sorted(CUSTOMER_FIELDS)),
    "events": tuple(sorted(EVENT_FIELDS)),
}
"""The fields each importer reads; any other column or key becomes an attribute or a
property."""
REQUIRED: dict[Kind, tuple[str, ...]] = {
    "customers": ("customer_id",),
    "events": ("customer_id", "type", "occurred_at"),
}
MAX_FIELD_BYTES = 1000
"""Small, so that fields over the limit cost little to make; no whole number of KiB, so
that a refusal must word it in bytes."""
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    # The store is function-scoped and shared by the examples on purpose (a database per
    # example would take seconds); each example checks what it changed, not absolute counts.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

hostile_text = st.sampled_from(
    [
        "",
        " ",
        '"',
        '""',
        "'",
        ",",
        ";",
        "\n",
        "\r\n",
        "\x00",
        "=1+1",
        "@SUM(A1)",
        "null",
        "NaN",
        "-inf",
        "1e400",
        "9" * 30,
        "1234.50",
        "2026-02-30",
        "2026-11-23T12:00:00Z",
        "2026-11-23T12:00:00+14:00",
        "20261123",
        "9999-12-31T23:59:59",
        "yes",
        "off",
        "x@example.com",
        "not an address",
        "+351 910 000 000",
        "Europe/Lisbon",
        "Mars/Olympus",
        "pt-PT",
        "purchase",
        "Page View",
        '{"a": 1}',
        "[1, 2]",
        "\ufeff",
        "\u202e",
        "é" * (MAX_FIELD_BYTES // 2 + 1),
        "x; DROP TABLE customers",
    ]
)
cells = st.one_of(hostile_text, st.sampled_from(KNOWN_IDS), st.text(max_size=12))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | cells,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(cells, inner, max_size=3),
    max_leaves=4,
)
GOOD = {
    "customer_id": st.sampled_from(KNOWN_IDS),
    "email": st.integers(0, 30).map("a{}@shop.example".format),
    "phone": st.just("+351910000001"),
    "locale": st.just("pt-PT"),
    "time_zone": st.just("Europe/Lisbon"),
    "birthday": st.just("1990-05-17"),
    "registered_at": st.just("2026-01-01T10:00:00Z"),
    "consent_email": st.sampled_from(["yes", "no"]),
    "consent_sms": st.sampled_from(["yes", "no"]),
    "attributes": st.just('{"tier": "gold"}'),
    "type": st.sampled_from(["purchase", "page_view"]),
    "occurred_at": st.integers(1, 28).map("2026-11-{:02d}T10:00:00Z".format),
    "value": st.sampled_from(["12.50", "3"]),
    "idempotency_key": st.integers(0, 30).map("k{}".format),
    "properties": st.just('{"page": "/features/x"}'),
}
"""Values each field takes as a real export writes them; the fuzz mixes them with hostile
ones, so that most rows are nearly right and a few things at a time are wrong."""


T = TypeVar("T")


def mostly(usual: st.SearchStrategy[T], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` seven times in eight, else ``other`` (``one_of`` would draw each half the
    time)."""
    return st.integers(0, 7).flatmap(lambda n: usual if n else other)


def field_values(name: str) -> st.SearchStrategy[str]:
    return mostly(GOOD.get(name, st.text(max_size=8)), cells)


@st.composite
def headers(draw: st.DrawFn, kind: Kind) -> list[str]:
    """Mostly the required fields and some others in any order; now and then anything."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.lists(st.one_of(st.sampled_from(COLUMNS[kind]), cells), max_size=6))
    others = st.one_of(st.sampled_from(COLUMNS[kind]), cells)
    extra = draw(st.lists(others.filter(lambda name: name not in REQUIRED[kind]), max_size=4))
    return draw(st.permutations([*REQUIRED[kind], *dict.fromkeys(extra)]))


@st.composite
def csv_files(draw: st.DrawFn, kind: Kind) -> bytes:
    """A CSV file: rows of nearly right values under a header, some of another width,
    written properly quoted or joined with bare commas, with stray bytes now and then."""
    header = draw(headers(kind))
    row = st.tuples(*map(field_values, header)).map(list)
    wrong_width = st.lists(cells, max_size=len(header) + 1)
    rows = draw(st.lists(mostly(row, wrong_width), min_size=1, max_size=8))
    if draw(st.integers(0, 3)):  # mostly as a CSV writer quotes; else joined with commas
        buffer = io.StringIO()
        csv.writer(buffer).writerows([header, *rows])
        text = buffer.getvalue()
    else:
        text = "".join(",".join(line) + "\n" for line in [header, *rows])
    data = text.encode()
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 4)) == 0:
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=8)) + data[cut:]
    return data


@st.composite
def json_objects(draw: st.DrawFn, kind: Kind) -> dict[str, Any]:
    fields = draw(headers(kind))
    typed = {"value": st.just(12.5), "properties": st.just({"page": "/features/x"})}
    return {name: draw(mostly(typed.get(name, field_values(name)), json_values)) for name in fields}


@st.composite
def jsonl_files(draw: st.DrawFn, kind: Kind) -> bytes:
    """A JSONL file: objects of nearly right fields, other JSON, text that is no JSON and
    bytes that are no text."""
    objects = json_objects(kind).map(lambda value: json.dumps(value).encode())
    lines = mostly(
        objects,
        st.one_of(
            json_values.map(lambda value: json.dumps(value).encode()),
            st.text(max_size=20).map(lambda text: text.replace("\n", " ").encode()),
            st.binary(max_size=12).map(lambda data: data.replace(b"\n", b" ")),
        ),
    )
    return b"".join(line + b"\n" for line in draw(st.lists(lines, min_size=1, max_size=8)))


async def _fuzz_settings(store: Store, settings: Settings) -> Settings:
    """The settings the fuzzed inputs are imported with; the known customers are added
    where an earlier example has not already imported them."""
    async with store.reading() as session:
        present = set(
            await session.scalars(
                select(Customer.external_id).where(Customer.external_id.in_(KNOWN_IDS))
            )
        )
    await add_people(store, [Person(key) for key in KNOWN_IDS if key not in present], NOW)
    imports = settings.imports.model_copy(update={"max_field_bytes": MAX_FIELD_BYTES})
    return settings.model_copy(update={"imports": imports})


async def _written(store: Store) -> dict[str, int]:
    """The rows of each table an import writes to."""
    written = (Customer, Event, CustomerRollup, PendingRollup)
    counts = [select(func.count()).select_from(model).scalar_subquery() for model in written]
    async with store.reading() as session:
        row = (await session.execute(select(*counts))).one()
    return {model.__tablename__: count for model, count in zip(written, row, strict=True)}


def _rejects(path: Path) -> list[dict[str, Any]]:
    """The rejects file's entries: JSON lines split at newlines only (a record may hold
    U+0085 or U+2028, which ``str.splitlines`` would also split at)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


async def _imports_or_refuses(
    store: Store, settings: Settings, kind: Kind, path: Path, data: bytes
) -> None:
    """Import ``data``: it imports, with every row counted and each refused one in the
    rejects file with its line and reason, or it is refused whole with a message that
    names the file, and nothing is written."""
    write_bytes(path, data)
    rejects = path.with_name("rejects.jsonl")
    before = await _written(store)
    try:
        report = await import_file(store, settings, kind, str(path), rejects_path=rejects)
    except CadenceError as error:
        message = str(error)
        assert message.startswith(str(path)) and "Traceback" not in message, message
        assert await _written(store) == before
        hypothesis.event("refused whole")
        return
    hypothesis.event("rows imported" if report.read > report.rejected else "no row imported")
    hypothesis.event("rows rejected" if report.rejected else "no row rejected")
    assert report.read == report.inserted + report.updated + report.unchanged + report.rejected
    refused = _rejects(rejects)
    assert len(refused) == report.rejected
    for entry in refused:
        assert entry["line"] >= 1 and entry["reason"], entry
        assert "Traceback" not in entry["reason"]
        if "larger than" in entry["reason"]:  # the limit as set, not rounded to "0 KiB"
            assert f"larger than {MAX_FIELD_BYTES:,} bytes" in entry["reason"], entry
    after = await _written(store)
    table_of_kind = "customers" if kind == "customers" else "events"
    assert after[table_of_kind] - before[table_of_kind] == report.inserted


@pytest.mark.parametrize("kind", ["customers", "events"])
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@given(data=st.data())
@settings(FUZZ, max_examples=40)
async def test_fuzzed_files_import_or_are_refused_with_a_reason(
    store: Store, settings: Settings, tmp_path: Path, fmt: str, kind: Kind, data: st.DataObject
) -> None:
    tuned = await _fuzz_settings(store, settings)
    files = csv_files if fmt == "csv" else jsonl_files
    await _imports_or_refuses(store, tuned, kind, tmp_path / f"in.{fmt}", data.draw(files(kind)))


MAX_BATCH_EVENTS = 6
MAX_BODY_BYTES = 4096
event_bodies = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.lists(mostly(json_objects("events"), json_values), max_size=MAX_BATCH_EVENTS + 2)
    .flatmap(lambda events: st.sampled_from([{"events": events}, events]))
    .map(lambda body: json.dumps(body).encode()),
)
"""Request bodies: bytes, any JSON, and batches (wrapped or bare) of nearly right events,
some larger than a batch may be and some than a body may be."""


_APPS: weakref.WeakKeyDictionary[Store, Starlette] = weakref.WeakKeyDictionary()


async def _event_api(store: Store, settings: Settings) -> Starlette:
    """The API over ``store`` with small limits, made once for all of a test's examples (it
    loads the program on its first event)."""
    tuned = await _fuzz_settings(store, settings)
    if store not in _APPS:
        _APPS[store] = create_app(
            store,
            tuned.model_copy(
                update={
                    "program_dir": DEFAULT_CONFIG_DIR / "program",
                    "api": tuned.api.model_copy(
                        update={
                            "ingest_token_hashes": [token_hash(INGEST_TOKEN)],
                            "max_body_bytes": MAX_BODY_BYTES,
                        }
                    ),
                    "ingest": tuned.ingest.model_copy(
                        update={"max_batch_events": MAX_BATCH_EVENTS}
                    ),
                }
            ),
        )
    return _APPS[store]


@given(body=event_bodies)
@settings(FUZZ, max_examples=80)
async def test_fuzzed_event_bodies_are_answered_with_a_4xx_or_stored_as_reported(
    store: Store, settings: Settings, body: bytes
) -> None:
    """Whatever the body, the answer is 200, 207, 400, 413 or 422 (never a 500) with a
    reason for each refusal, and exactly the events reported stored are in the store."""
    app = await _event_api(store, settings)
    before = await _written(store)
    transport = httpx.ASGITransport(app=app)  # the app's errors are raised here, not 500s
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        answer = await http.post(
            "/v1/events",
            content=body,
            headers={"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"},
        )
    after = await _written(store)
    hypothesis.event(f"HTTP {answer.status_code}")
    assert answer.status_code in (200, 207, 400, 413, 422), answer.text
    document = answer.json()
    if answer.status_code in (400, 413):
        assert isinstance(document["error"], str) and document["error"], document
        assert after == before
        return
    rejected = document["rejected"]
    assert document["accepted"] + len(rejected) == document["received"]
    assert (answer.status_code == 200) == (not rejected)
    assert (answer.status_code == 422) == (document["accepted"] == 0 < document["received"])
    for refusal in rejected:
        assert 400 <= refusal["status"] < 500 and refusal["reason"], refusal
    assert after["events"] - before["events"] == document["stored"]


# --- 19: the same parsers under atheris (coverage-guided; `-m slow`) -----------------------

ATHERIS_SECONDS = 60


@pytest.mark.slow
def test_atheris_finds_no_input_that_breaks_the_parsers(tmp_path: Path) -> None:
    """Run this module as an atheris harness for a minute: the importers' parsing (CSV and
    JSONL, customers and events) and the event API's checks, without a database. Any
    exception but a file-level :class:`CadenceError` is a crash, which atheris reports
    (with the input that caused it) and exits non-zero for."""
    pytest.importorskip("atheris")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.test_security_inputs",
            f"-max_total_time={ATHERIS_SECONDS}",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=ATHERIS_SECONDS * 3,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Done" in result.stderr, result.stderr[-4000:]


def _atheris_main() -> None:  # pragma: no cover - runs in the harness process
    atheris: Any = importlib.import_module("atheris")  # optional: not a dependency

    from core.ingest.customers import CustomerImporter
    from core.ingest.events import EventImporter
    from core.ingest.live import check_events
    from core.ingest.runner import Importer, SourceSpec, parse_chunks
    from core.ingest.source import Row, RowError

    # This module has imported the code under test already, so instrument_imports() would
    # miss it, and instrument_all() takes minutes: instrument the importers' functions.
    for function in gc.get_objects():
        if isinstance(function, types.FunctionType) and str(function.__module__).startswith(
            "core.ingest"
        ):
            atheris.instrument_func(function)
    zone, now = ZoneInfo("UTC"), clock.now()
    settings = Settings()
    path = Path(tempfile.mkdtemp(prefix="cadence-atheris-")) / "input"
    importers = (CustomerImporter(zone, now), EventImporter(zone, now, "fuzz", MAX_FIELD_BYTES))

    def one_input(data: bytes) -> None:
        if not data:
            return
        choice, rest = data[0], data[1:]
        if choice % 3 == 2:  # a POST /v1/events body, as the route reads it
            try:
                body = json.loads(rest)
            except (ValueError, RecursionError):
                return
            events = body.get("events") if isinstance(body, dict) else body
            if isinstance(events, list):
                rows = [Row(i, e, "") for i, e in enumerate(events) if isinstance(e, dict)]
                check_events(settings, rows, now, source="fuzz")
            return
        importer: Importer[Any] = importers[choice % 2]
        path.write_bytes(rest)
        fmt = "csv" if choice & 4 else "jsonl"
        spec = SourceSpec(str(path), fmt, {}, importer.required, MAX_FIELD_BYTES)
        try:
            source = spec.open()
            for chunk in parse_chunks(importer, source, lambda: source.bytes_read):
                assert all(rejected.reason for rejected in chunk.rejected)
        except CadenceError as error:
            assert str(error)
        except RowError:
            raise AssertionError("a row error escaped its row") from None

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    _atheris_main()
