"""``cadence bench``: benchmarks that print one JSON line each."""

from __future__ import annotations

import json

import click

from core.cli.app import cli, common_options, load_command_settings, run, run_fast


@cli.group()
def bench() -> None:
    """Benchmarks that print one JSON line each."""


@bench.command("import")
@click.option("--events", default=1_000_000, show_default=True, type=click.IntRange(1))
@click.option("--customers", default=10_000, show_default=True, type=click.IntRange(1))
@click.option("--database-url", help="Benchmark this database instead of a fresh SQLite file.")
@common_options
def bench_import(events: int, customers: int, database_url: str | None) -> None:
    """Import EVENTS events from a CSV file and compare with plain sqlite3 executemany."""
    from core.bench import benchmark_import

    settings = load_command_settings()
    result = run(
        benchmark_import(settings, events=events, customers=customers, database_url=database_url)
    )
    click.echo(json.dumps(result))


@bench.command("segments")
@click.option("--customers", default=1_000_000, show_default=True, type=click.IntRange(1))
@click.option("--segments", default=200, show_default=True, type=click.IntRange(1))
@common_options
def bench_segments(customers: int, segments: int) -> None:
    """Time a stage refresh plus a full refresh of SEGMENTS segments over CUSTOMERS customers."""
    from core.bench_segments import benchmark_segments
    from core.program import load_program

    settings = load_command_settings()
    program = load_program(settings.resolve(settings.program_dir))
    result = run(benchmark_segments(settings, program, customers=customers, segments=segments))
    click.echo(json.dumps(result))


@bench.command("plan")
@click.option("--customers", default=1_000_000, show_default=True, type=click.IntRange(1))
@click.option("--campaigns", default=100, show_default=True, type=click.IntRange(1))
@click.option(
    "--segments",
    default=200,
    show_default=True,
    type=click.IntRange(1),
    help="Segments materialised; the campaigns target some of them.",
)
@common_options
def bench_plan(customers: int, campaigns: int, segments: int) -> None:
    """Time one planning tick of CAMPAIGNS due campaigns over CUSTOMERS customers."""
    from core.bench_plan import benchmark_plan
    from core.program import load_program

    settings = load_command_settings()
    program = load_program(settings.resolve(settings.program_dir))
    result = run(
        benchmark_plan(
            settings, program, customers=customers, campaigns=campaigns, segments=segments
        )
    )
    click.echo(json.dumps(result))


@bench.command("deliver")
@click.option("--messages", default=20_000, show_default=True, type=click.IntRange(1))
@click.option(
    "--connections",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Persistent SMTP connections, for the worker and the floors alike.",
)
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes sharing the connections (the floors use one process).",
)
@common_options
def bench_deliver(messages: int, connections: int, processes: int) -> None:
    """Drain MESSAGES queued e-mails through a local SMTP sink, against aiosmtplib alone."""
    from core.bench_deliver import bench_deliver as benchmark_deliver

    load_command_settings()
    click.echo(json.dumps(run_fast(benchmark_deliver(messages, connections, processes))))


@bench.command("trigger")
@click.option("--events", default=20_000, show_default=True, type=click.IntRange(1))
@click.option("--rate", default=200.0, show_default=True, type=click.FloatRange(min=0.1))
@click.option("--url", help="Post to this running node instead of starting one.")
@click.option("--token", help="With --url: an ingest token of that node.")
@click.option("--database-url", help="Start the node on this PostgreSQL database (emptied).")
@common_options
def bench_trigger(
    events: int, rate: float, url: str | None, token: str | None, database_url: str | None
) -> None:
    """Post EVENTS purchases at RATE a second; latency from receipt to the outbox row."""
    from core.bench_trigger import bench_trigger as benchmark_trigger

    load_command_settings()
    click.echo(json.dumps(run(benchmark_trigger(events, rate, url, token, database_url))))


@bench.command("kpi")
@click.option("--customers", default=1_000_000, show_default=True, type=click.IntRange(1))
@click.option("--database-url", help="Benchmark this PostgreSQL database (emptied) instead.")
@common_options
def bench_kpi(customers: int, database_url: str | None) -> None:
    """Time a day's KPI snapshot plus the uplift of 100 campaigns over CUSTOMERS customers."""
    from core.bench_kpi import benchmark_kpi
    from core.program import load_program

    settings = load_command_settings()
    program = load_program(settings.resolve(settings.program_dir))
    result = run(benchmark_kpi(settings, program, customers=customers, database_url=database_url))
    click.echo(json.dumps(result))


@bench.command("console")
@click.option("--customers", default=1_000_000, show_default=True, type=click.IntRange(1))
@click.option("--database-url", help="Benchmark this PostgreSQL database (emptied) instead.")
@common_options
def bench_console(customers: int, database_url: str | None) -> None:
    """Start the console headless over CUSTOMERS customers: time to the dashboard, the
    slowest screen switch, peak memory."""
    from console.bench import benchmark_console

    settings = load_command_settings()
    result = run(benchmark_console(settings, customers=customers, database_url=database_url))
    click.echo(json.dumps(result))


@bench.command("soak")
@click.option(
    "--minutes",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="How long events stream in (a fraction for a short check, e.g. 0.3).",
)
@click.option("--rate", default=20.0, show_default=True, type=click.FloatRange(min=0.1))
@click.option(
    "--cycle-customers",
    default=500,
    show_default=True,
    type=click.IntRange(1),
    help="Customers the cycle campaign sends to every minute.",
)
@click.option("--database-url", help="Start the node on this PostgreSQL database (emptied).")
@common_options
def bench_soak(minutes: float, rate: float, cycle_customers: int, database_url: str | None) -> None:
    """A real `cadence run` for MINUTES: purchases posted at RATE a second plus a cycle
    every minute, mail into a local sink; memory growth, errors and trigger latency."""
    from core.bench_soak import bench_soak as benchmark_soak

    load_command_settings()
    click.echo(json.dumps(run_fast(benchmark_soak(minutes, rate, cycle_customers, database_url))))
