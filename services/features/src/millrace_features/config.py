from __future__ import annotations

from millrace_common.settings import CommonSettings, service_config
from pydantic import Field


class Settings(CommonSettings):
    model_config = service_config("features")

    port: int = Field(8040, description="HTTP port (health, metrics, drift, train requests).")
    app_id: str = Field(
        "millrace-features",
        description="The consumer group on `raw` (workers with the same id share its "
        "partitions); faust's own group, for electing the retraining timer's leader, is "
        "`<app_id>-control`.",
    )
    data_dir: str = Field("./.millrace/features-state", description="faust's local folder.")
    partitions: int = Field(
        4,
        description="Partitions of `raw`, `features`, `dlq` (when features creates them): "
        "at most this many workers share the stream.",
    )
    batch_size: int = Field(
        2000,
        description="At most this many raw records are taken at once (whatever has arrived, "
        "no waiting to fill); their feature rows are written and published together.",
    )
    max_windows: int = Field(
        200_000,
        description="Entity windows kept in memory; the least recently seen go first and "
        "are rebuilt from the offline store when their entity comes back.",
    )
    retrain_check_seconds: float = Field(
        2.0, description="Seconds between the leader's checks of every model's retraining policy."
    )
    drift_check_seconds: float = Field(
        30.0, description="Drift is measured on the retraining timer, at most this often."
    )
    drift_max_rows: int = Field(
        50_000, description="Drift is measured over at most this many of a window's newest rows."
    )
    session_timeout_seconds: float = Field(
        4.0,
        description="The consumer group's session timeout: how long a stopped worker keeps its "
        "partitions before the others take them over.",
    )
