"""Serving settings: shared ``MILLRACE_*`` variables plus ``MILLRACE_SERVING_*``."""

from __future__ import annotations

from pathlib import Path

from millrace_common.errors import InvalidInput
from millrace_common.settings import CommonSettings, service_config
from pydantic import Field


class Settings(CommonSettings):
    model_config = service_config("serving")

    port: int = Field(8030, description="HTTP port.")
    registry_url: str = Field(
        "http://127.0.0.1:8020",
        description="The registry: what the aliases point at, at start and on each resync, "
        "and the traffic policies.",
    )
    models: str = ""
    """Comma-separated model names to serve; empty means every model the registry lists."""
    aliases: str = "production"
    """Comma-separated aliases to serve for each model."""
    resync_interval: float = 30.0
    """Seconds between reconciliations against the registry (catches missed events)."""
    publish_predictions: bool = Field(
        True,
        description="Log every answered prediction to `predictions` (off the request path; "
        "dropped and counted when the broker is away).",
    )
    versions: str = ""
    """Pinned versions to serve beside the aliases, e.g. ``machine-failure:3,spindle:1``."""
    max_body_bytes: int = Field(1_048_576, description="Largest request body (more is a 413).")
    max_batch: int = 1024
    """Most rows one request may carry (more is a 422)."""
    request_timeout: float = 10.0
    """Seconds a request may wait for scoring (then 504)."""
    prediction_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    """The share of answered predictions logged to ``predictions`` (what the registry's
    monitor joins to labels): 1.0 logs every one, 0 none. Drawn before the log is built,
    so an unlogged prediction costs nothing."""
    batching: str = ""
    """Adaptive batching per model, ``name:window:max_rows``, e.g. ``machine-failure:8ms:64``."""
    traffic: str = ""
    """Traffic policies per model, e.g. ``machine-failure:canary:10`` (10% to challenger)
    or ``machine-failure:shadow`` (mirror to challenger, answer from production); these
    override the registry's policy for the models they name."""
    traffic_interval: float = 5.0
    """Seconds between reads of the registry's traffic policies (0: read once at start)."""
    cache_dir: str = Field(
        "",
        description="Where the last-known-good model of every slot served is kept, so a "
        "restart with the registry or the object store away serves it (default "
        "./.millrace/serving/<port>).",
    )
    retry_max_delay: float = Field(
        3.0,
        description="Longest wait between tries while the registry, the broker or a model's "
        "artifact is away (backoff with jitter up to it).",
    )

    @property
    def cache_path(self) -> Path:
        # one folder per port: two serving processes on one host never share current.json
        return Path(self.cache_dir) if self.cache_dir else Path(f"./.millrace/serving/{self.port}")

    @property
    def model_names(self) -> frozenset[str]:
        return _split(self.models)

    @property
    def alias_names(self) -> frozenset[str]:
        return _split(self.aliases) or frozenset({"production"})

    @property
    def pinned_versions(self) -> list[tuple[str, int]]:
        pins = []
        for item in sorted(_split(self.versions)):
            name, _, version = item.rpartition(":")
            if not name or not version.isdigit():
                raise InvalidInput(
                    f"MILLRACE_SERVING_VERSIONS: {item!r} is not name:version", field="versions"
                )
            pins.append((name, int(version)))
        return pins


def _split(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())
