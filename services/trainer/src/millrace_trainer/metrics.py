"""The trainer's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RUNS = Counter("millrace_trainer_runs_total", "Train requests handled", ["model", "outcome"])
RUN_SECONDS = Histogram(
    "millrace_trainer_run_seconds",
    "Time to handle a train request",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800),
)
