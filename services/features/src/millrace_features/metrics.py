"""The features service's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ROWS = Counter("millrace_features_rows_total", "Offline feature rows written", ["feature_set"])
REPLAYS = Counter("millrace_features_replayed_total", "Events seen again (no effect)")
REJECTS = Counter("millrace_features_rejected_total", "Raw messages sent to the dlq")
SNAPSHOTS = Counter("millrace_features_snapshots_total", "Snapshots written", ["model"])
DRIFT_PSI = Gauge(
    "millrace_features_drift_psi",
    "Population Stability Index of a feature's recent window against the latest snapshot",
    ["model", "feature"],
)
