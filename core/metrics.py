"""The process's Prometheus metrics, served at ``GET /metrics`` (see :mod:`core.api.metrics`).

Counters count what this process did since it started (Prometheus sums the
nodes); the queue depth is read from the store at each scrape, so every
node reports the same shared queue.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SENDS = Counter(
    "cadence_sends", "Messages handed to a channel, by channel and outcome.", ["channel", "outcome"]
)
JOB_RUNS = Counter(
    "cadence_job_runs",
    "Scheduler job executions on this node, by job and status.",
    ["job", "status"],
)
QUEUE_DEPTH = Gauge(
    "cadence_outbox_waiting",
    "Outbox messages not yet settled, by channel and state (queued, retry, sending).",
    ["channel", "state"],
)
LEADER = Gauge("cadence_scheduler_leader", "1 while this node runs the schedule, else 0.")
TRIGGER_LATENCY = Histogram(
    "cadence_trigger_latency_seconds",
    "From an ingested event batch's arrival to its events, and the outbox rows of the "
    "triggers they fired, committed.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
