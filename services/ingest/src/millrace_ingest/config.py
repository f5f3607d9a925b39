from __future__ import annotations

from millrace_common.settings import CommonSettings, service_config
from pydantic import Field


class Settings(CommonSettings):
    model_config = service_config("ingest")

    port: int = Field(8010, description="HTTP port.")
    max_records_per_request: int = Field(
        5000, description="Most records (or prediction logs) one request may carry (more is a 422)."
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        description="Largest request body, in bytes; a larger one is a 413 before it is read.",
    )
    max_record_bytes: int = Field(
        1_000_000,
        description="Largest record, JSON-encoded, in bytes: at most the broker's message "
        "size. A larger one is a 413 naming its largest field, and nothing of the batch is sent.",
    )
    send_timeout: float = Field(
        5.0,
        description="Seconds a batch may wait for the broker's acknowledgement before the "
        "post is a 503 with Retry-After.",
    )
    retry_after: int = Field(
        5, description="The Retry-After (seconds) of a 503 while the broker is away."
    )
