from __future__ import annotations

from millrace_common.settings import CommonSettings, service_config


class Settings(CommonSettings):
    model_config = service_config("features")

    port: int = 8040
    app_id: str = "millrace-features"
    data_dir: str = "./.millrace/features-state"
    partitions: int = 4
    batch_size: int = 500
    batch_within_seconds: float = 0.3
    retrain_check_seconds: float = 2.0
    # drift is measured on the retraining timer, at most this often, over at most the
    # newest drift_max_rows rows of each model's window
    drift_check_seconds: float = 30.0
    drift_max_rows: int = 50_000
    session_timeout_seconds: float = 4.0
