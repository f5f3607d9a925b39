"""Serving's own Prometheus metrics (predict request metrics live in the shared router)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SWAPS = Counter("millrace_serving_swaps_total", "Models swapped in", ["model", "alias"])
SWAP_FAILURES = Counter(
    "millrace_serving_swap_failures_total",
    "Swaps that failed and kept the old model",
    ["model", "reason"],
)
LOADED_VERSION = Gauge(
    "millrace_serving_loaded_version", "Version loaded per alias", ["model", "alias"]
)
PREDICTION_LOGS_DROPPED = Counter(
    "millrace_serving_prediction_logs_dropped_total",
    "Prediction logs dropped (queue full or broker down)",
)
