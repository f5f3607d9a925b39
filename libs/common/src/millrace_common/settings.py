"""Settings shared by every service; each service subclasses with its own prefix.

Shared variables keep their platform-wide names (``MILLRACE_BROKER`` …) whatever the
subclass's prefix; a service's own variables are ``MILLRACE_<SERVICE>_*``.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MILLRACE_", extra="ignore", populate_by_name=True)

    broker: str = Field("127.0.0.1:9092", validation_alias="MILLRACE_BROKER")
    database_url: str = Field(
        "postgresql+psycopg://postgres@127.0.0.1:5432/millrace",
        validation_alias="MILLRACE_DATABASE_URL",
    )
    object_store: str = Field(
        "file://./.millrace/objects", validation_alias="MILLRACE_OBJECT_STORE"
    )
    project: str = Field("examples/factory", validation_alias="MILLRACE_PROJECT")
    log_level: str = Field("info", validation_alias="MILLRACE_LOG_LEVEL")
    host: str = Field("127.0.0.1", validation_alias="MILLRACE_HOST")


def service_config(service: str) -> SettingsConfigDict:
    """Config for a service's own variables: ``MILLRACE_<SERVICE>_*``."""
    prefix = f"MILLRACE_{service.upper().replace('-', '_')}_"
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", populate_by_name=True)
