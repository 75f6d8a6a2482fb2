"""``cadence bench soak``: a node's working day compressed into minutes. Does its memory stay
flat, do errors stay at zero, does the trigger latency hold?

Setup, not measured: a fresh store (a SQLite file, or the PostgreSQL database given,
emptied) at the latest schema, with a program of two e-mail campaigns: a transactional
receipt for every ``purchase``, and a cycle every minute to the ``cycle_customers``
customers of the segment ``soak-cycle``, with the contact caps lifted so that the cycle
reaches them every minute. The program is applied as of two minutes ago, so the cycle's
latest slot is due at once. An SMTP sink (:class:`core.sink.SmtpSink`) runs in this
process; ``cadence run`` in its own, refreshing stages and segments every minute.

Measured: one purchase a request, each of a new customer, posted at ``rate`` a second
for ``minutes`` (open loop, through :func:`core.bench_trigger.post_all`: a request's
latency runs from when it was due to its answer, which comes once its receipt's outbox
row is committed); the node's resident memory every second. Then the outbox is given
up to :data:`DRAIN_SECONDS` to empty, and the node is stopped with SIGTERM.

``rss_mb_start`` is taken once the node has warmed up (:func:`warmup_seconds`), so
``growth_pct`` (of the resident set, the target's measure) is what the rest of the run
added; ``anon_*`` is the anonymous part alone, the heap without the pages of mapped files
(on SQLite the database is read through ``mmap``, and its pages count as resident).

``errors`` adds up everything that went wrong (``error_kinds`` says what): events not
accepted, messages failed or still waiting when the drain ended, job runs that failed,
log lines at error level, and an exit other than 0.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from config import DEFAULT_CONFIG_DIR
from core import clock
from core.api.auth import new_ingest_token
from core.bench_data import CACHE_DIR
from core.bench_trigger import (
    empty_postgresql,
    free_port,
    latency_figures,
    post_all,
    start_node,
    wait_healthy,
    write_config,
)
from core.db import Store, create_engine
from core.errors import CadenceError
from core.ingest import import_file
from core.lifecycle import refresh_stages
from core.migrations import upgrade
from core.models import Campaign, CampaignRun, JobRun, OutboxMessage
from core.outbox import waiting_messages
from core.program import load_program
from core.program.apply import apply_program
from core.segments import refresh_segments
from core.settings import load_settings
from core.sink import SmtpSink

TARGET_GROWTH_PCT = 10.0
TARGET_P95_MS = 1000.0
DRAIN_SECONDS = 60.0
SAMPLE_SECONDS = 1.0
STOP_SECONDS = 60.0
CYCLE = "soak-cycle"
RECEIPT = "soak-receipt"
CAMPAIGNS = f"""
[[campaign]]
name = "{RECEIPT}"
kind = "triggered"
category = "transactional"
trigger = {{ event = "purchase" }}
channel = "email"
variants = ["receipt"]
priority = 100
control = 0

[[campaign]]
name = "{CYCLE}"
kind = "cycle"
target = {{ segment = "{CYCLE}" }}
schedule = "* * * * *"
channel = "email"
variants = ["offer_a", "offer_b"]
priority = 50
control = 0
"""
SEGMENTS = f"""
[[segment]]
name = "{CYCLE}"
description = "The customers the soak's cycle campaign reaches every minute"
rule = 'attr("soak") == "cycle"'
"""


def warmup_seconds(seconds: float) -> float:
    """How long the node runs before its memory counts as the start: a tenth of the run,
    at least 5 s (imports, pools and caches fill in the first requests) and at most 60 s."""
    return min(max(seconds / 10, 5.0), 60.0)


async def bench_soak(
    minutes: float, rate: float, cycle_customers: int, database_url: str | None
) -> dict[str, Any]:
    """Run the soak; the JSON line's fields (see the module docstring)."""
    if database_url is not None and not database_url.startswith("postgresql"):
        raise CadenceError(
            "--database-url takes a PostgreSQL database (it is emptied); "
            "without it the soak runs on a fresh SQLite file of its own"
        )
    seconds = minutes * 60
    events = max(1, round(rate * seconds))
    CACHE_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as scratch:
        token, digest = new_ingest_token()
        port = free_port()
        async with SmtpSink() as sink:
            if database_url is not None:
                await empty_postgresql(database_url)
            folder, config, database = _write_config(scratch, database_url, port, digest, sink)
            store = await _prepare(config, database, events, cycle_customers)
            try:
                with (folder / "node.log").open("wb") as log:
                    node = start_node(config, log)
                    try:
                        run = await _run(node, f"http://127.0.0.1:{port}", token, events, rate)
                        drained = await _drain(store)
                    finally:
                        await _stop(node)
                outcome = await _outcome(store)
            finally:
                await store.close()
            received = sink.stats().received
        log_errors = _error_lines(folder / "node.log")
    kinds = {
        "refused": run.refused,
        "failed_messages": outcome["failed"],
        "unsent": 0 if drained else outcome["waiting"],
        "failed_jobs": outcome["failed_jobs"],
        "log_errors": log_errors,
        "exit": int(node.returncode != 0),
    }
    figures = latency_figures(run.latencies)
    start = run.start or run.end
    growth = _growth(start.rss, run.end.rss)
    errors = sum(kinds.values())
    return {
        "benchmark": "soak",
        "database": store.backend,
        "minutes": minutes,
        "rate": rate,
        "events": events - run.refused,
        "messages": received,
        "receipts": outcome["receipts"],
        "cycle_runs": outcome["cycle_runs"],
        "cycle_messages": outcome["cycle_messages"],
        "errors": errors,
        "error_kinds": kinds,
        "warmup_s": warmup_seconds(seconds),
        "rss_mb_start": round(start.rss, 1),
        "rss_mb_end": round(run.end.rss, 1),
        "rss_mb_peak": round(run.peak, 1),
        "growth_pct": round(growth, 1),
        "anon_mb_start": round(start.anon, 1),
        "anon_mb_end": round(run.end.anon, 1),
        "anon_growth_pct": round(_growth(start.anon, run.end.anon), 1),
        **figures,
        "target_growth_pct": TARGET_GROWTH_PCT,
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": errors == 0
        and growth < TARGET_GROWTH_PCT
        and figures["p95_ms"] < TARGET_P95_MS,
    }


def _write_config(
    scratch: str, database_url: str | None, port: int, digest: str, sink: SmtpSink
) -> tuple[Path, Path, str]:
    """The soak's folder, its settings file (program, API, sink, lifted caps) and its
    database: a SQLite file there unless ``database_url``."""
    folder = Path(scratch).resolve()
    database = database_url or f"sqlite+aiosqlite:///{folder / 'soak.db'}"
    sections = f"""
[smtp]
host = "{sink.host}"
port = {sink.port}

[policy]
quiet_hours = "off"
max_per_day = 100000
max_per_week = 1000000

[scheduler]
refresh_minutes = 1

[delivery]
idle_seconds = 0.2
"""
    config = write_config(folder, database, port, digest, CAMPAIGNS, sections)
    (folder / "program" / "segments-soak.toml").write_text(SEGMENTS)
    return folder, config, database


async def _prepare(config: Path, database: str, events: int, cycle_customers: int) -> Store:
    """The store at the latest schema, the program applied two minutes ago, the customers
    imported (``bench-N``, who buy, and the cycle's) and placed in stages and segments.

    The store and program are the soak's own whatever ``CADENCE_*`` variables say (they
    would win over the settings file); the settings only tune the import."""
    settings = load_settings(config)
    store = Store(create_engine(database))
    await upgrade(store)
    program = load_program(config.parent / "program", DEFAULT_CONFIG_DIR / "templates")
    now = clock.now()
    await apply_program(store, program, now - timedelta(minutes=2))
    path = config.parent / "customers.csv"
    with path.open("w") as handle:
        handle.write("customer_id,email,consent_email,soak\n")
        handle.writelines(f"bench-{i},bench-{i}@soak.example,yes,\n" for i in range(events))
        handle.writelines(
            f"cycle-{i},cycle-{i}@soak.example,yes,cycle\n" for i in range(cycle_customers)
        )
    await import_file(store, settings, "customers", str(path))
    async with store.transaction() as session:
        await refresh_stages(session, program, now)
    await refresh_segments(store, program, now)
    return store


@dataclass(frozen=True)
class _Memory:
    """A process's resident set and the anonymous part of it (its heap, not the pages of
    files it maps, such as the SQLite database), in MiB."""

    rss: float
    anon: float


class _Run:
    """What the timed part saw: each request's latency, the events refused, the node's
    memory once warm, at the end and its largest resident set."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.refused = 0
        self.start: _Memory | None = None
        self.end = _Memory(0.0, 0.0)
        self.peak = 0.0

    def sample(self, pid: int, warm: bool) -> None:
        self.end = _memory(pid)
        self.peak = max(self.peak, self.end.rss)
        if warm and self.start is None:
            self.start = self.end


async def _run(
    node: subprocess.Popen[bytes], base: str, token: str, events: int, rate: float
) -> _Run:
    await wait_healthy(base, node)
    run = _Run()
    warm_at = time.monotonic() + warmup_seconds(events / rate)

    async def sample() -> None:
        while True:
            run.sample(node.pid, time.monotonic() >= warm_at)
            await asyncio.sleep(SAMPLE_SECONDS)

    sampler = asyncio.create_task(sample())
    try:
        run.latencies, run.refused = await post_all(base, token, events, rate)
    finally:
        sampler.cancel()
    run.sample(node.pid, True)
    return run


def _growth(start: float, end: float) -> float:
    return (end - start) / start * 100 if start else 0.0


async def _stop(node: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and the node's graceful stop awaited without blocking this loop: the sink
    in it must answer the node's last SMTP commands."""
    node.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(node.wait, STOP_SECONDS)
    except subprocess.TimeoutExpired:
        node.kill()
        await asyncio.to_thread(node.wait)


def _memory(pid: int) -> _Memory:
    """The memory of process ``pid`` now (Linux: ``/proc``); zero once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return _Memory(0.0, 0.0)
    kib = {
        name: int(value.split()[0])
        for name, _, value in (line.partition(":") for line in status.splitlines())
        if name in ("VmRSS", "RssAnon")
    }
    return _Memory(kib.get("VmRSS", 0) / 1024, kib.get("RssAnon", 0) / 1024)


async def _drain(store: Store) -> bool:
    """Wait until no message is waiting to be sent; False when some still were after
    :data:`DRAIN_SECONDS`."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        async with store.reading() as session:
            if await waiting_messages(session) == 0:
                return True
        await asyncio.sleep(0.5)
    return False


async def _outcome(store: Store) -> dict[str, int]:
    """From the store: sent receipts and cycle messages, cycle runs, failed and still
    waiting messages, failed job runs."""
    outbox = OutboxMessage.__table__.c
    async with store.reading() as session:
        sent_per_campaign = await session.execute(
            select(Campaign.name, func.count())
            .select_from(OutboxMessage)
            .join(Campaign, Campaign.id == outbox.campaign_id)
            .where(outbox.state == "sent")
            .group_by(Campaign.name)
        )
        sent = {name: count for name, count in sent_per_campaign.all()}
        failed = await session.scalar(
            select(func.count()).select_from(OutboxMessage).where(outbox.state == "failed")
        )
        cycle_runs = await session.scalar(
            select(func.count())
            .select_from(CampaignRun)
            .join(Campaign, Campaign.id == CampaignRun.campaign_id)
            .where(Campaign.name == CYCLE)
        )
        failed_jobs = await session.scalar(
            select(func.count()).select_from(JobRun).where(JobRun.status == "failed")
        )
        waiting = await waiting_messages(session)
    return {
        "receipts": sent.get(RECEIPT, 0),
        "cycle_messages": sent.get(CYCLE, 0),
        "cycle_runs": int(cycle_runs or 0),
        "failed": int(failed or 0),
        "failed_jobs": int(failed_jobs or 0),
        "waiting": waiting,
    }


def _error_lines(log: Path) -> int:
    """The node's log lines at error level or above (lines that are not JSON count too:
    a traceback printed outside the logger)."""
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        try:
            level = json.loads(line).get("level", "")
        except (json.JSONDecodeError, AttributeError):
            count += bool(line.strip())
            continue
        count += level in ("error", "critical")
    return count
