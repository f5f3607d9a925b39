"""Settings shared by every service; each service subclasses with its own prefix.

Shared variables keep their platform-wide names (``MILLRACE_BROKER`` …) whatever the
subclass's prefix; a service's own variables are ``MILLRACE_<SERVICE>_*``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_FILES = {"database_url": "MILLRACE_DATABASE_URL_FILE", "token": "MILLRACE_TOKEN_FILE"}
"""Settings that may also come from a file (Docker and Kubernetes secrets): the variable
names the file, whose content (less a trailing newline) is the value."""


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
    auth: Literal["required", "off"] = Field(
        "required",
        validation_alias="MILLRACE_AUTH",
        description="`required`: every route but health, metrics and the API documents needs "
        "credentials with a role that the route allows (docs/security.md); `off`: nobody "
        "is asked (a machine of your own).",
    )
    auth_keys_file: str = Field(
        "",
        validation_alias="MILLRACE_AUTH_KEYS_FILE",
        description="A file of hashed keys (`millrace keys create --file`), checked besides "
        "the database's: where there is no database, as at a site.",
    )
    auth_oidc_issuer: str = Field(
        "",
        validation_alias="MILLRACE_AUTH_OIDC_ISSUER",
        description="An OIDC issuer whose JWTs are accepted (its `iss`); empty: keys only.",
    )
    auth_oidc_audience: str = Field(
        "millrace",
        validation_alias="MILLRACE_AUTH_OIDC_AUDIENCE",
        description="The `aud` the issuer's tokens must carry.",
    )
    auth_oidc_jwks_url: str = Field(
        "",
        validation_alias="MILLRACE_AUTH_OIDC_JWKS_URL",
        description="The issuer's JWKS; empty: from its `/.well-known/openid-configuration`.",
    )
    auth_oidc_roles_claim: str = Field(
        "roles",
        validation_alias="MILLRACE_AUTH_OIDC_ROLES_CLAIM",
        description="The claim holding a token's Millrace roles (a list, or a string of "
        "roles separated by spaces).",
    )
    auth_cache_seconds: float = Field(
        10.0,
        ge=0,
        validation_alias="MILLRACE_AUTH_CACHE_SECONDS",
        description="Seconds a credential's check is remembered: a revoked key stops working "
        "within this time.",
    )
    token: SecretStr = Field(
        SecretStr(""),
        validation_alias="MILLRACE_TOKEN",
        description="The credential this service presents to the others (a key from "
        "`millrace keys create`, or a JWT); also from the file `MILLRACE_TOKEN_FILE` names.",
    )

    def model_post_init(self, _context: Any) -> None:
        for name, variable in SECRET_FILES.items():
            text = secret_from_file(variable)
            if text is not None and name in type(self).model_fields:
                setattr(self, name, SecretStr(text) if name == "token" else text)

    def bearer(self) -> dict[str, str]:
        """The headers that carry this service's credential, if it has one."""
        token = self.token.get_secret_value()
        return {"Authorization": f"Bearer {token}"} if token else {}


def secret_from_file(variable: str) -> str | None:
    """The content (less a trailing newline) of the file the environment variable
    ``variable`` names, as Docker and Kubernetes mount secrets; None when it is unset. A
    file that cannot be read is a one-line exit naming the variable."""
    path = os.environ.get(variable)
    if not path:
        return None
    try:
        return Path(path).read_text().rstrip("\n")
    except OSError as exc:
        raise SystemExit(f"{variable}: cannot read {path}: {exc.strerror}") from None


def bearer_from_env() -> dict[str, str]:
    """The headers for a client outside the services (the CLI, the connectors): the
    credential in ``MILLRACE_TOKEN`` or the file ``MILLRACE_TOKEN_FILE`` names."""
    token = secret_from_file(SECRET_FILES["token"]) or os.environ.get("MILLRACE_TOKEN", "")
    return {"Authorization": f"Bearer {token}"} if token else {}


def service_config(service: str) -> SettingsConfigDict:
    """Config for a service's own variables: ``MILLRACE_<SERVICE>_*``."""
    prefix = f"MILLRACE_{service.upper().replace('-', '_')}_"
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", populate_by_name=True)
