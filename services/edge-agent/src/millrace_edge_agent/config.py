"""Edge-agent settings: ``MILLRACE_EDGE_AGENT_*`` (and ``MILLRACE_OBJECT_STORE``), an
optional YAML/JSON config file, and the command line, weakest first: file < env < CLI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from millrace_common.errors import InvalidInput
from millrace_common.project import window_seconds
from millrace_common.settings import CommonSettings, service_config
from pydantic import Field, ValidationError, field_validator

_INSTANCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Settings(CommonSettings):
    model_config = service_config("edge-agent")

    port: int = Field(8060, description="HTTP port (predictions, records, status).")
    site: str = Field("", description="This site's id (required; or `--site`).")
    cache_dir: str = ""
    """Where models and ``current.json`` live; default ``./.millrace/edge/<site>``."""
    instance_id: str = ""
    """This agent's own id within its site: it names the agent's Kafka consumer group
    and MQTT client. Empty: a random id made on first start and kept in
    ``<cache-dir>/instance-id``."""
    poll_interval: float = 5.0
    """Seconds between manifest polls when all is well."""
    max_backoff: float = 60.0
    """Upper bound of the delay between polls after failures."""

    mqtt_url: str = ""
    """A local MQTT broker to take records from: ``mqtt://[user:password@]host[:port]``
    (``mqtts://`` for TLS). Empty: records come over REST only."""
    mqtt_topic: str = "millrace/{site}/{dataset}/records"
    """The topics to subscribe to (QoS 1): the level ``{dataset}`` names the dataset of
    a message's records, ``{site}`` is this site's id, other levels may be ``+``."""

    forward_url: str = ""
    """The centre's ingest (``http://ingest:8010``); queued records go there. Empty: they
    stay queued."""
    forward_batch: int = Field(
        500, description="Records (or prediction logs) per forwarding request."
    )
    forward_retry_cap: float = 30.0
    """Upper bound of the delay between forwarding attempts while the centre is away."""
    queue_max_rows: int = Field(
        1_000_000, description="Most records the on-disk queue holds; then `queue_policy` applies."
    )
    queue_max_age: float = 7 * 86400.0
    """Seconds a record may wait for the centre before it is dropped (and counted)."""
    queue_policy: Literal["reject-new", "drop-oldest"] = Field(
        "reject-new",
        description="A full queue refuses new records (507 over REST; MQTT waits for room) or "
        "drops the oldest (counted).",
    )
    forward_mode: Literal["raw", "aggregate"] = "raw"
    """``aggregate``: send one record per entity and closed window of event time (field
    means, label maxima) instead of every record; needs the project folder."""
    aggregate_window: str = "60s"
    """The tumbling window of pre-aggregation: ``30s``, ``10m``, ``1h``…"""
    aggregate_grace: str = "10s"
    """How long past a window's end (by the site's clock), and since its last record
    arrived, a window waits for stragglers before it is sent."""
    max_windows: int = Field(
        1_000,
        ge=1,
        description="Entities whose feature windows stay in memory (with the project folder); "
        "the least recently used leave first and are read back from the queue file when "
        "their entity returns. A window holds twice the longest feature window of readings, "
        "~300 bytes each (one a second, 10-minute windows: ~0.35 MiB).",
    )
    max_records_per_request: int = Field(
        5000, description="Most records one request may carry (more is a 422)."
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1,
        description="Largest request body (and MQTT message), in bytes: a larger body is a "
        "413 before it is read, a larger message a dead letter.",
    )
    max_record_bytes: int = Field(
        1_000_000,
        ge=1,
        description="Largest record, JSON-encoded, in bytes (as ingest's, which the centre "
        "refuses beyond): a larger one is a 413 naming its largest field and nothing of the "
        "request is queued; in an MQTT message, the message is a dead letter.",
    )
    prediction_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    """The share of answered predictions logged for the centre (``predictions``, through
    ingest): 1.0 logs every one, 0 none."""
    prediction_log_max_rows: int = Field(default=100_000, ge=1)
    """Prediction logs kept on disk for the centre; past it the oldest are dropped
    (and counted): a prediction is never refused for its log."""
    prediction_log_buffer: int = Field(default=10_000, ge=1)
    """Prediction logs held in memory between writes to disk; past it they are dropped
    (and counted). A crash loses at most what this buffer holds."""
    registry_url: str = ""
    """Where heartbeats go. Empty: no heartbeats."""
    heartbeat_interval: float = Field(
        30.0, description="Seconds between heartbeats to `registry_url`."
    )

    trusted_key_file: str = ""
    """The registry's Ed25519 public key (PEM): only manifests and models signed with its
    private key are used. Required unless ``allow_unsigned``."""
    allow_unsigned: bool = False
    """Use manifests and models no registry key signed (sha256 checks only), on a machine
    of your own; off, an agent without ``trusted_key_file`` does not start."""
    health_window: int = 200
    """A new model is on probation for its first this-many predictions…"""
    health_window_seconds: float = 300.0
    """…or this many seconds, whichever ends first."""
    health_max_error_rate: float = 0.05
    """Over its probation, a model that fails more than this share of its predictions
    is rolled back to the last-known-good one (and refused from then on)."""
    follow_kafka: bool = True
    """Follow ``model-published`` on ``MILLRACE_BROKER`` (when non-empty) to swap within
    seconds; polling the manifest goes on regardless."""
    stop_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a SIGTERM gives the agent to stop, whatever its broker, MQTT "
        "broker, registry or centre is doing: requests under way get half of it, then each "
        "loop and client what is left; whatever has not stopped by then is left behind, and "
        "the queue file is closed.",
    )

    @field_validator("instance_id")
    @classmethod
    def _instance_id(cls, value: str) -> str:
        if value and not _INSTANCE_ID.fullmatch(value):
            raise ValueError("letters, digits, '.', '_' and '-' only")
        return value

    @field_validator("aggregate_window", "aggregate_grace")
    @classmethod
    def _duration(cls, value: str) -> str:
        window_seconds(value)  # raises ValueError naming the format
        return value

    @property
    def aggregate_window_seconds(self) -> int:
        return window_seconds(self.aggregate_window)

    @property
    def aggregate_grace_seconds(self) -> int:
        return window_seconds(self.aggregate_grace)

    @property
    def queue_path(self) -> Path:
        return self.cache_path / "queue.sqlite3"

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir or f"./.millrace/edge/{self.site}")


def load_settings(
    *, config_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    try:
        from_env = Settings()
        merged = _read_config(config_file) if config_file else {}
        merged.update({name: getattr(from_env, name) for name in from_env.model_fields_set})
        merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
        settings = Settings(**merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"setting {where}: {first['msg']}", field=where) from None
    if not settings.site:
        raise InvalidInput("a site is required (--site or MILLRACE_EDGE_AGENT_SITE)", field="site")
    return settings


def _read_config(path: str | Path) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise InvalidInput(f"config file {path} must hold a mapping", field="config")
    unknown = set(data) - set(Settings.model_fields)
    if unknown:
        raise InvalidInput(f"unknown settings in {path}: {sorted(unknown)}", field="config")
    return data
