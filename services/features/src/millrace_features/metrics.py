"""The features service's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS = Counter("millrace_features_rows_total", "Offline feature rows written", ["feature_set"])
REPLAYS = Counter("millrace_features_replayed_total", "Events seen again (no effect)")
REJECTS = Counter("millrace_features_rejected_total", "Raw messages sent to the dlq")
SNAPSHOTS = Counter("millrace_features_snapshots_total", "Snapshots written", ["model"])
DRIFT_PSI = Gauge(
    "millrace_features_drift_psi",
    "Population Stability Index of a feature's recent window against the latest snapshot",
    ["model", "feature"],
)
BATCH_SECONDS = Histogram(
    "millrace_features_batch_seconds",
    "Time to turn a batch of raw records into stored and published rows",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_FAILURES = Counter(
    "millrace_features_batch_failures_total",
    "Batches that failed and are retried (nothing is skipped), by cause: the store "
    "(the database away) or the worker (a fault in computing the rows)",
    ["cause"],
)
RAW_LAG = Gauge(
    "millrace_features_raw_lag",
    "Records of raw not yet turned into rows, per partition this worker owns (the "
    "broker's end offset minus the last batch handed on); the autoscaler's signal",
    ["partition"],
)
