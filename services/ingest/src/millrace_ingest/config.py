from __future__ import annotations

from millrace_common.settings import CommonSettings, service_config


class Settings(CommonSettings):
    model_config = service_config("ingest")

    port: int = 8010
    max_records_per_request: int = 5000
