"""The process's Prometheus metrics, served at ``GET /metrics`` (see :mod:`core.api.metrics`).

Counters count what this process did since it started (Prometheus sums the
nodes); the queue depth is read from the store at each scrape, so every
node reports the same shared queue.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
