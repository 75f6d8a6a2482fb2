"""``cadence bench trigger``: events posted over HTTP at a steady rate, and how long each
takes from receipt to its triggered message's outbox row.

Setup, not timed: a fresh store (a SQLite file, or the PostgreSQL database
given, emptied) with ``events`` customers (an e-mail address and consent
each) and a program whose one triggered campaign, a transactional receipt,
matches every ``purchase``; then ``cadence run`` in its own process, serving
the API on a free loopback port. With ``url``, a running node is used instead
(its program must trigger on ``purchase`` for the customers ``bench-N``).

Timed: one purchase a request, of a different customer each, sent at
``rate`` a second on a fixed schedule (open loop: a slow answer does not
delay the next request). The API answers once the transaction that stored
the event and wrote its outbox row has committed, so the time from the
scheduled send to the answer bounds "receipt to outbox row" from above.
``lost``: events without their outbox row (with a fresh store, counted in the
database; with ``url``, events not accepted).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select, text

from config import DEFAULT_CONFIG_DIR
from core.api.auth import new_ingest_token
from core.bench_data import CACHE_DIR
from core.db import Store, create_engine
from core.models import OutboxMessage

CAMPAIGN = """
[[campaign]]
name = "bench-receipt"
kind = "triggered"
category = "transactional"
trigger = { event = "purchase" }
channel = "file"
variants = ["receipt"]
priority = 100
control = 0
"""


async def bench_trigger(
    events: int, rate: float, url: str | None, token: str | None, database_url: str | None
) -> dict[str, Any]:
    """Run the benchmark; the JSON line's fields (see the module docstring)."""
    if url is not None:
        latencies, refused = await post_all(url, token or "", events, rate)
        return _result(events, rate, latencies, refused, "url")
    CACHE_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as scratch:
        token, digest = new_ingest_token()
        port = free_port()
        if database_url is not None:
            await empty_postgresql(database_url)
        config, database = _prepare(scratch, database_url, port, digest, events)
        node = start_node(config)
        try:
            base = f"http://127.0.0.1:{port}"
            await wait_healthy(base, node)
            latencies, refused = await post_all(base, token, events, rate)
        finally:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.kill()
        store = Store(create_engine(database))
        try:
            async with store.reading() as session:
                written = await session.scalar(select(func.count()).select_from(OutboxMessage))
        finally:
            await store.close()
        result = _result(events, rate, latencies, refused, store.backend)
        result["lost"] = events - int(written or 0)
        return result


def _result(
    events: int, rate: float, latencies: list[float], refused: int, database: str
) -> dict[str, Any]:
    return {
        "benchmark": "trigger",
        "database": database,
        "events": events,
        "rate": rate,
        **latency_figures(latencies),
        "refused": refused,
        "lost": refused,
    }


def latency_figures(latencies: list[float]) -> dict[str, float]:
    """The median, 95th and 99th percentiles and the largest of ``latencies`` (seconds),
    in milliseconds."""
    cuts = statistics.quantiles(latencies, n=100, method="inclusive") if latencies else [0.0] * 99
    return {
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(max(latencies, default=0.0) * 1000, 1),
    }


async def post_all(base: str, token: str, events: int, rate: float) -> tuple[list[float], int]:
    """Post one purchase a request at ``rate`` a second, of customer ``bench-N`` for the
    N-th; each answer's latency, and how many events were not accepted."""
    latencies: list[float] = []
    refused = 0
    poster = _Poster(base, token)

    async def post(index: int, due: float) -> None:
        nonlocal refused
        event = {
            "customer_id": f"bench-{index}",
            "type": "purchase",
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "value": 10 + index % 90,
            "idempotency_key": f"bench-order-{index}",
        }
        status = await poster.post(json.dumps({"events": [event]}).encode())
        latencies.append(time.perf_counter() - due)
        refused += 0 if status == 200 else 1

    start = time.perf_counter() + 0.1
    tasks = []
    try:
        for index in range(events):
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(index, due)))
        await asyncio.gather(*tasks)
    finally:
        poster.close()
    return latencies, refused


class _Poster:
    """``POST /v1/events`` over kept-alive HTTP/1.1 connections, as many as the requests in
    flight need (up to ``_MAX_CONNECTIONS``).

    A load generator must cost far less than what it loads: httpx's pool spends time in
    proportion to its connections on every request, and at a few hundred of them the
    client, not the node, set the latency.
    """

    def __init__(self, base: str, token: str) -> None:
        address = urlsplit(base)
        self._host = address.hostname or "127.0.0.1"
        self._port = address.port or 80
        self._head = (
            f"POST /v1/events HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        ).encode()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(_MAX_CONNECTIONS)

    async def post(self, body: bytes) -> int:
        """The answer's status; 0 when none came within ``_TIMEOUT_SECONDS``."""
        async with self._slots:
            # A kept-alive connection the server has just closed fails before answering:
            # the event goes again on a new one (its idempotency key makes that safe).
            for attempt in range(2):
                reused = attempt == 0 and bool(self._idle)
                try:
                    connection = (
                        self._idle.pop()
                        if reused
                        else await asyncio.open_connection(self._host, self._port)
                    )
                except OSError:
                    return 0
                try:
                    status = await asyncio.wait_for(
                        self._exchange(connection, body), _TIMEOUT_SECONDS
                    )
                except (OSError, asyncio.IncompleteReadError, TimeoutError):
                    connection[1].close()
                    if reused:
                        continue
                    return 0
                self._idle.append(connection)
                return status
        return 0

    async def _exchange(
        self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], body: bytes
    ) -> int:
        reader, writer = connection
        writer.write(self._head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        head = await reader.readuntil(b"\r\n\r\n")
        length = _CONTENT_LENGTH.search(head)
        await reader.readexactly(int(length[1]) if length else 0)
        return int(head.split(maxsplit=2)[1])

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()


_MAX_CONNECTIONS = 500
_TIMEOUT_SECONDS = 60.0
_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


def _prepare(
    scratch: str, database_url: str | None, port: int, digest: str, customers: int
) -> tuple[Path, str]:
    """The settings file of a fresh store at the latest schema, the program applied and
    ``customers`` customers imported; and the database's URL."""
    folder = Path(scratch).resolve()
    database = database_url or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    config = _write_config(folder, database, port, digest)
    _cadence(config, "db", "upgrade")
    _cadence(config, "program", "apply")
    path = folder / "customers.csv"
    rows = (f"bench-{i},bench-{i}@bench.example,yes\n" for i in range(customers))
    path.write_text("customer_id,email,consent_email\n" + "".join(rows))
    _cadence(config, "import", "customers", str(path))
    return config, database


def start_node(config: Path, log: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """``cadence run`` on the benchmark's settings, in its own process; its output (the
    JSON log lines) goes to ``log``, or nowhere."""
    command = [sys.executable, "-c", "from core.cli import main; main()", "--config", str(config)]
    output = log or subprocess.DEVNULL
    return subprocess.Popen(
        [*command, "run"], stdout=output, stderr=output, env=bench_environment()
    )


def _write_config(folder: Path, database: str, port: int, digest: str) -> Path:
    sections = f"""
[policy]
quiet_hours = "off"

[channels.file]
path = "{folder / "outbox.jsonl"}"
"""
    return write_config(folder, database, port, digest, CAMPAIGN, sections)


def write_config(
    folder: Path, database: str, port: int, digest: str, campaigns: str, sections: str
) -> Path:
    """A benchmark's ``cadence.toml`` in ``folder``: its database, a program in
    ``folder/program`` (the default stages, segments and scores, and ``campaigns``), the
    API on ``port`` taking the ingest token of hash ``digest``, then the TOML
    ``sections`` of its own."""
    program = folder / "program"
    program.mkdir()
    for name in ("stages.toml", "segments.toml", "scores.toml"):
        shutil.copy(DEFAULT_CONFIG_DIR / "program" / name, program / name)
    (program / "campaigns.toml").write_text(campaigns)
    config = folder / "cadence.toml"
    config.write_text(
        f"""database_url = "{database}"
program_dir = "program"
templates_dir = "{DEFAULT_CONFIG_DIR / "templates"}"

[api]
port = {port}
ingest_token_hashes = ["{digest}"]
{sections}"""
    )
    return config


def _cadence(config: Path, *arguments: str) -> None:
    command = [sys.executable, "-c", "from core.cli import main; main()", "--config", str(config)]
    subprocess.run(
        [*command, *arguments], check=True, stdout=subprocess.DEVNULL, env=bench_environment()
    )


def bench_environment() -> dict[str, str]:
    """This process's environment without ``CADENCE_*`` variables, for the benchmark's
    own ``cadence`` processes: its settings file says everything, and a variable such as
    ``CADENCE_DATABASE_URL`` would win over it and aim the benchmark at a real store."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("CADENCE_")}


async def empty_postgresql(database_url: str) -> None:
    """Drop every table of the benchmark's PostgreSQL database: a fresh store."""
    store = Store(create_engine(database_url))
    try:
        async with store.transaction() as session:
            await session.execute(text("DROP SCHEMA public CASCADE"))
            await session.execute(text("CREATE SCHEMA public"))
    finally:
        await store.close()


async def wait_healthy(base: str, node: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(300):
            if node.poll() is not None:
                raise RuntimeError(f"cadence run exited with {node.returncode}")
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("cadence run did not answer /healthz within 30 s")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
