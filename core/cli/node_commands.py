"""``cadence run`` (a headless node) and ``cadence scheduler status``."""

from __future__ import annotations

import click
from rich import box
from rich.table import Table

from core import clock
from core.cli.app import (
    cli,
    common_options,
    load_command_program,
    load_command_settings,
    out,
    run,
    run_fast,
    with_store,
)
from core.db import Store
from core.durations import describe_span


@cli.command("run")
@common_options
def run_node_command() -> None:
    """Run Cadence headless: the schedule (on the leader), delivery and the HTTP API.

    Logs are JSON lines on stderr; SIGTERM or Ctrl-C stops gracefully.
    """
    from core.logs import log_as_json
    from core.node import run_node

    settings = load_command_settings()
    load_command_program(settings)  # a broken program stops here, with its problems
    log_as_json()
    run_fast(with_store(settings, lambda store: run_node(store, settings)))


@cli.group()
def scheduler() -> None:
    """The built-in scheduler: its nodes, jobs and recent job runs."""


@scheduler.command("status")
@click.option("--runs", default=15, show_default=True, help="Recent job runs to show.")
@common_options
def scheduler_status(runs: int) -> None:
    """Who leads, each node's heartbeat, the leader's jobs and the latest job runs."""
    from core.scheduler.records import JobRecord, NodeStatus, recent_job_runs, scheduler_nodes

    settings = load_command_settings()

    async def read(store: Store) -> tuple[list[NodeStatus], list[JobRecord]]:
        async with store.reading() as session:
            return await scheduler_nodes(session, clock.now()), await recent_job_runs(
                session, limit=runs
            )

    nodes, records = run(with_store(settings, read))
    if not nodes:
        out.print("No node is running: start one with `cadence run`.")
    for node in nodes:
        age = describe_span(node.heartbeat_age)
        out.print(f"[bold]{node.role}[/] {node.node}  heartbeat {age} ago")
    leader = next((node for node in nodes if node.role == "leader"), None)
    if leader is not None and leader.jobs:
        jobs = Table(title="Jobs", box=box.SIMPLE_HEAD, pad_edge=False)
        jobs.add_column("job", no_wrap=True)
        jobs.add_column("next run", no_wrap=True)
        for name, next_time in sorted(leader.jobs.items(), key=lambda item: item[1]):
            jobs.add_row(name, next_time[:19].replace("T", " "))
        out.print(jobs)
    table = Table(title="Recent job runs", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("started", "job", "status", "took", "counts"):
        table.add_column(column, no_wrap=column != "counts")
    for record in records:
        took = record.finished_at - record.started_at if record.finished_at else None
        counts = " ".join(f"{key} {value:,}" for key, value in record.counts.items())
        detail = (record.error or "").splitlines()[0] if record.status == "failed" else counts
        table.add_row(
            f"{record.started_at:%m-%d %H:%M:%S}",
            record.job,
            record.status,
            describe_span(took) if took is not None else "-",
            detail,
        )
    out.print(table if records else "No job has run yet.")
