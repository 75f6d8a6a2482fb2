"""The ``cadence`` command: one module per group of commands, all on :data:`cli`."""

from core.cli import (
    bench_commands,
    bounce_commands,
    campaign_commands,
    console_commands,
    customer_commands,
    delivery_commands,
    ingest_commands,
    intel_commands,
    node_commands,
    ops_commands,
    program_commands,
    report_commands,
    report_stage_commands,
    run_commands,
    simulate_commands,
    sink_commands,
    store_commands,
)
from core.cli.app import cli, main

__all__ = [
    "bench_commands",
    "bounce_commands",
    "campaign_commands",
    "cli",
    "console_commands",
    "customer_commands",
    "delivery_commands",
    "ingest_commands",
    "intel_commands",
    "main",
    "node_commands",
    "ops_commands",
    "program_commands",
    "report_commands",
    "report_stage_commands",
    "run_commands",
    "simulate_commands",
    "sink_commands",
    "store_commands",
]
