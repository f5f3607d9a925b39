from __future__ import annotations

from millrace_common.settings import CommonSettings, service_config
from pydantic import Field


class Settings(CommonSettings):
    """``MILLRACE_REGISTRY_*`` variables (plus the shared ``MILLRACE_*`` ones)."""

    model_config = service_config("registry")

    port: int = Field(8020, description="HTTP port (REST API and web UI).")
    relay_interval: float = Field(
        0.5, description="Seconds between the outbox relay's scans for unpublished events."
    )
    max_upload_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1,
        description="The largest model file an upload (or a run's file) may bring.",
    )
    upload_body_timeout: float = Field(
        900.0, gt=0, description="Seconds an upload's body may take to arrive (more is a 408)."
    )
    signing_key_file: str = ""
    """An Ed25519 private key (PEM): site manifests and their model digests are signed
    with it. Empty: manifests are unsigned."""
    monitor: bool = Field(
        True,
        description="Consume `predictions`, `labels` and labelled `features` rows for live "
        "quality (GET /v1/models/{name}/monitoring) and act on the models' monitoring policies.",
    )
    monitor_interval: float = Field(
        30.0,
        gt=0,
        description="Seconds between the monitor's checks (Prometheus gauges, rollbacks).",
    )
    monitor_group: str = Field(
        "registry-monitor",
        description="The monitor's Kafka consumer group: the registry's replicas share it.",
    )
    features_url: str = Field(
        "http://127.0.0.1:8040",
        description="The features service, asked for a snapshot and a train request when a "
        "model's live quality falls below its `retrain.on_quality` threshold (with "
        "`MILLRACE_TOKEN`, a key with the scientist role).",
    )
    monitor_retention_days: float = Field(
        30.0,
        gt=0,
        description="Days the monitor keeps served predictions and labels (purged hourly).",
    )
    monitor_archive_after_hours: float = Field(
        24.0,
        ge=0,
        description="Hours after a day ends before its served predictions and their labels "
        "are archived to the object store as Parquet (monitoring/<model>/predictions/); late "
        "labels have this long to arrive.",
    )
    monitor_feature_labels: bool = Field(
        True,
        description="Take the labelled rows of `features` as labels (a label present on a later "
        "record): the monitor stores each one. Off when labels come only over REST or on "
        "`labels`, or when the stream's labelled rows outrun the registry's database.",
    )
