"""The edge agent's Prometheus metrics (predict request metrics live in the shared router)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SYNC_FAILURES = Counter(
    "millrace_edge_sync_failures_total", "Manifest polls or model fetches that failed", ["reason"]
)
SWAPS = Counter("millrace_edge_swaps_total", "Models swapped in", ["model", "alias"])
SWAP_FAILURES = Counter(
    "millrace_edge_swap_failures_total",
    "Models that failed verification and were not swapped in",
    ["model", "reason"],
)
LOADED_VERSION = Gauge(
    "millrace_edge_loaded_version", "Version loaded per alias", ["model", "alias"]
)
LAST_SYNC = Gauge(
    "millrace_edge_last_sync_timestamp_seconds", "When the manifest was last read successfully"
)
QUEUE_DEPTH = Gauge("millrace_edge_queue_depth", "Records waiting on disk for the centre")
QUEUED = Counter("millrace_edge_records_queued_total", "Records accepted from local producers")
FEATURE_ROWS = Counter(
    "millrace_edge_feature_rows_total",
    "Feature rows computed at the site from local records (on disk with them)",
    ["feature_set"],
)
FORWARDED = Counter("millrace_edge_records_forwarded_total", "Records the centre acknowledged")
FORWARD_RECORDS_IN = Counter(
    "millrace_edge_forward_records_in_total",
    "Queued records the centre now has, as themselves or inside an acknowledged aggregate",
)
FORWARD_RECORDS_OUT = Counter(
    "millrace_edge_forward_records_out_total",
    "Records sent to the centre and acknowledged (aggregates count "
    "once): in/out is the bandwidth saved",
)
FORWARD_FAILURES = Counter(
    "millrace_edge_forward_failures_total", "Batches the centre did not acknowledge (retried later)"
)
DROPPED = Counter(
    "millrace_edge_records_dropped_total", "Records that will never reach the centre", ["reason"]
)
DEAD_LETTERS = Counter(
    "millrace_edge_dead_letters_total",
    "Dead letters kept at the site with their reason (GET /v1/dead-letters): source mqtt "
    "(a message no record could be taken from) or centre (a record, or an aggregate, the "
    "centre refused for good)",
    ["source"],
)
HEARTBEAT_FAILURES = Counter(
    "millrace_edge_heartbeat_failures_total",
    "Heartbeats not delivered yet (kept on disk, sent later)",
)
ROLLBACKS = Counter(
    "millrace_edge_rollbacks_total",
    "Models rolled back to the last-known-good one after failing their health check",
    ["model"],
)
PROBATION_FAILURES = Counter(
    "millrace_edge_probation_failures_total",
    "Predictions that failed on a model still on probation",
    ["model"],
)
RETRIED_ON_FALLBACK = Counter(
    "millrace_edge_predictions_retried_total",
    "Failed predictions answered by the last-known-good model instead",
    ["model"],
)
MODEL_EVENTS = Counter(
    "millrace_edge_model_events_total", "model-published events received from Kafka", ["outcome"]
)
MQTT_MESSAGES = Counter(
    "millrace_edge_mqtt_messages_total",
    "Messages from the local MQTT broker: queued, invalid (kept as dead letters), or "
    "deferred_queue_full (left with the broker until the queue has room)",
    ["outcome"],
)
PREDICTION_LOGS_STORED = Counter(
    "millrace_edge_prediction_logs_stored_total", "Prediction logs written to the on-disk queue"
)
PREDICTION_LOGS_FORWARDED = Counter(
    "millrace_edge_prediction_logs_forwarded_total", "Prediction logs the centre acknowledged"
)
PREDICTION_LOGS_DROPPED = Counter(
    "millrace_edge_prediction_logs_dropped_total",
    "Prediction logs that will never reach the centre: buffer_full (the in-memory buffer "
    "had no room), queue_full_dropped_oldest, refused_by_centre, write_failed",
    ["reason"],
)
PREDICTION_LOG_DEPTH = Gauge(
    "millrace_edge_prediction_log_depth", "Prediction logs waiting on disk for the centre"
)
PREDICTION_LOG_FORWARD_FAILURES = Counter(
    "millrace_edge_prediction_log_forward_failures_total",
    "Prediction-log batches the centre did not acknowledge (retried later)",
)
