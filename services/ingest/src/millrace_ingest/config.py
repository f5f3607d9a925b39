from __future__ import annotations

from millrace_common.settings import CommonSettings, service_config
from pydantic import Field


class Settings(CommonSettings):
    model_config = service_config("ingest")

    port: int = Field(8010, description="HTTP port.")
    max_records_per_request: int = Field(
        5000, description="Most records (or prediction logs) one request may carry (more is a 422)."
    )
