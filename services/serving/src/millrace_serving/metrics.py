"""Serving's own Prometheus metrics (the predict request metrics are the data plane's, in
``millrace_common.dataplane``, shared with the edge agent)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
BATCH_ROWS = Histogram(
    "millrace_serving_batch_rows",
    "Rows per batched onnxruntime call",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
ROUTED = Counter(
    "millrace_serving_routed_total",
    "Requests routed by a traffic policy",
    ["model", "alias", "policy"],
)
TARGET_MISMATCH = Gauge(
    "millrace_serving_target_mismatch",
    "1 while what a slot serves differs from the registry's target (or cannot be checked "
    "against it), with why: missing_artifact, sha256_mismatch, schema_mismatch, "
    "store_unreachable, registry_unreachable …",
    ["model", "alias", "reason"],
)
