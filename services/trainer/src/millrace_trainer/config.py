from __future__ import annotations

from millrace_common.settings import CommonSettings, service_config
from pydantic import Field


class Settings(CommonSettings):
    """``MILLRACE_TRAINER_*`` variables (plus the shared ``MILLRACE_*`` ones)."""

    model_config = service_config("trainer")

    port: int = Field(8050, description="HTTP port (health, metrics).")
    registry_url: str = Field(
        "http://127.0.0.1:8020", description="The registry, where runs and versions are recorded."
    )
    group_id: str = Field(
        "trainer",
        description="The consumer group on `train-requests`: trainers sharing it split the "
        "models between them (one model trains at a time).",
    )
    instance: str = Field(
        "",
        description="This trainer's name, recorded on the runs it starts: when it starts, "
        "those it left `running` (killed mid-run) are failed as interrupted. Unset: the "
        "host's name; trainers sharing a host and a registry need one each.",
    )
    lock_file: str | None = Field(
        None,
        description="The `uv.lock` whose hash each version's lineage records; unset: the "
        "nearest one above the project folder, else the platform's own.",
    )
    registry_timeout: float = Field(30.0, description="Seconds one registry request may take.")
    registry_retry_seconds: float = Field(
        120.0,
        description="How long a registry call is retried (transport errors, 5xx) before the "
        "attempt fails.",
    )
