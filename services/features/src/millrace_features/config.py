from __future__ import annotations

from millrace_common.settings import CommonSettings, service_config
from pydantic import Field


class Settings(CommonSettings):
    model_config = service_config("features")

    port: int = Field(8040, description="HTTP port (health, metrics, drift, train requests).")
    app_id: str = Field(
        "millrace-features",
        description="The faust app id: the consumer group on `raw` and the prefix of the "
        "changelog topic that restores the windows.",
    )
    data_dir: str = Field("./.millrace/features-state", description="faust's local folder.")
    partitions: int = Field(
        4,
        description="Partitions of `raw`, `features`, `dlq` (when features creates them) and "
        "of the windows table: at most this many workers share the stream.",
    )
    batch_size: int = Field(
        500, description="Raw records taken at once; their feature rows are written together."
    )
    batch_within_seconds: float = Field(
        0.3, description="Seconds a batch waits to fill before it is processed anyway."
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
