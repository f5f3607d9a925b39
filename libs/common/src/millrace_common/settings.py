"""Settings shared by every service; each service subclasses with its own prefix.

Shared variables keep their platform-wide names (``MILLRACE_BROKER`` …) whatever the
subclass's prefix; a service's own variables are ``MILLRACE_<SERVICE>_*``.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MILLRACE_", extra="ignore", populate_by_name=True)

    broker: str = Field(
        "127.0.0.1:9092",
        validation_alias="MILLRACE_BROKER",
        description="The Kafka bootstrap servers, `host:port` (comma-separated for several).",
    )
    database_url: str = Field(
        "postgresql+psycopg://postgres@127.0.0.1:5432/millrace",
        validation_alias="MILLRACE_DATABASE_URL",
        description="The SQLAlchemy URL of the Postgres database; a service that keeps state "
        "keeps it in a schema of its own, migrated at start (SQLite: `millrace dev` only).",
    )
    object_store: str = Field(
        "file://./.millrace/objects",
        validation_alias="MILLRACE_OBJECT_STORE",
        description="`s3://bucket?endpoint=http://host:9000&region=…` (keys from "
        "`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`) or `file:///path`.",
    )
    project: str = Field(
        "examples/factory",
        validation_alias="MILLRACE_PROJECT",
        description="The project folder, whose `millrace.yaml` declares the datasets, "
        "feature sets and models.",
    )
    log_level: str = Field(
        "info",
        validation_alias="MILLRACE_LOG_LEVEL",
        description="`debug`, `info`, `warning` or `error`; logs are one JSON object a line.",
    )
    host: str = Field(
        "127.0.0.1",
        validation_alias="MILLRACE_HOST",
        description="The address the HTTP server listens on (`0.0.0.0` in a container).",
    )
    request_body_timeout: float = Field(
        30.0,
        gt=0,
        validation_alias="MILLRACE_REQUEST_BODY_TIMEOUT",
        description="Seconds a client has to send a request's whole body, from its first "
        "read; a slower body (or one shorter than its Content-Length) is a 408.",
    )


def service_config(service: str) -> SettingsConfigDict:
    """Config for a service's own variables: ``MILLRACE_<SERVICE>_*``."""
    prefix = f"MILLRACE_{service.upper().replace('-', '_')}_"
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", populate_by_name=True)
