from __future__ import annotations

from millrace_common.settings import CommonSettings, service_config


class Settings(CommonSettings):
    """``MILLRACE_TRAINER_*`` variables (plus the shared ``MILLRACE_*`` ones)."""

    model_config = service_config("trainer")

    port: int = 8050
    registry_url: str = "http://127.0.0.1:8020"
    group_id: str = "trainer"
    lock_file: str | None = None
    registry_timeout: float = 30.0
    registry_retry_seconds: float = 120.0
