"""The scaffold every Millrace HTTP service stands on: one app factory (lifespan, error
handlers, health, metrics, OpenAPI) and one ``run`` for ``main``.

A service supplies a runtime with ``start``, ``stop`` and ``ready``, and its routes::

    def create_app(runtime: Runtime) -> FastAPI:
        app = service_app(runtime, title="Millrace ingest", description=__doc__)
        app.include_router(router)
        return app

    def main() -> None:
        settings = Settings()
        run("ingest", settings, lambda: create_app(bootstrap(settings)))
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any, Protocol

import structlog
import uvicorn
from fastapi import FastAPI

from millrace_common.errors import MillraceError
from millrace_common.http import (
    BodyLimit,
    BulkRoutes,
    ErrorBody,
    V2ErrorBody,
    health_router,
    install_error_handlers,
    telemetry,
)
from millrace_common.identity import (
    PUBLIC,
    Authenticator,
    Guard,
    KeyFile,
    KeyLookup,
    OidcVerifier,
    Rules,
)
from millrace_common.logs import configure_logging
from millrace_common.settings import CommonSettings

log = structlog.get_logger("millrace.service")

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
"""A service's largest request body unless its settings have ``max_body_bytes``."""


class Runtime(Protocol):
    """What a service's composition root hands the scaffold."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ready(self) -> tuple[bool, str]: ...


def service_app(
    runtime: Runtime,
    *,
    title: str,
    description: str | None = None,
    health: bool = True,
    bulk: BulkRoutes | None = None,
) -> FastAPI:
    """A FastAPI app that starts and stops ``runtime`` with itself, keeps it in
    ``app.state.runtime``, bounds every request body in size and time (``BodyLimit``,
    from the runtime's settings), answers every error in the one error shape and serves
    /healthz, /readyz and /metrics (``health=False`` for an app whose hot routes must
    be matched first: add ``health_routes(app, runtime)`` after them); ``bulk`` routes
    (file uploads) have a limit and a time of their own."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=title,
        description=(description or "").strip(),
        version=metadata.version("millrace-common"),
        lifespan=lifespan,
        telemetry=telemetry(),
    )
    app.state.runtime = runtime
    settings = getattr(runtime, "settings", None)
    app.add_middleware(
        BodyLimit,
        max_bytes=getattr(settings, "max_body_bytes", DEFAULT_MAX_BODY_BYTES),
        timeout=getattr(settings, "request_body_timeout", 30.0),
        bulk=bulk,
    )
    install_error_handlers(app)
    document_errors(app)
    if health:
        health_routes(app, runtime)
    return app


def document_errors(app: FastAPI) -> None:
    """/openapi.json as the handlers answer: the 422 FastAPI documents by itself for any
    route with parameters is the one error body (under /v2, the Open Inference
    Protocol's), not its ``HTTPValidationError``."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = generate()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for model in (ErrorBody, V2ErrorBody):
            schemas.setdefault(model.__name__, model.model_json_schema(ref_template=_REF))
            for name, sub in model.model_json_schema(ref_template=_REF).get("$defs", {}).items():
                schemas.setdefault(name, sub)
        schemas[ErrorBody.__name__].pop("$defs", None)
        for path, operations in spec.get("paths", {}).items():
            body = V2ErrorBody if path.startswith("/v2") else ErrorBody
            for operation in operations.values():
                invalid = operation.get("responses", {}).get("422", {})
                content = invalid.get("content", {}).get("application/json", {})
                if content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                    content["schema"] = {"$ref": _REF.format(model=body.__name__)}
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


_REF = "#/components/schemas/{model}"


def secure(app: FastAPI, settings: CommonSettings, rules: Rules, *, database: bool = True) -> None:
    """Every route of ``app`` behind ``rules`` (identity's ``Guard``), unless
    ``MILLRACE_AUTH=off``. Call it last, when every route is in: an operation of the API
    document that no rule covers is a start-up error, so no route is ever open by
    omission. ``database``: keys are looked up in the database's ``auth.api_keys`` too
    (the edge agent has none: its keys file and OIDC only)."""
    missing = rules.unruled(operations(app))
    if missing:
        raise RuntimeError(f"{app.title}: no access rule for {', '.join(missing)}")
    document_access(app, rules)
    if settings.auth == "off":
        log.warning("auth_off", service=app.title, note="MILLRACE_AUTH=off: nobody is asked")
        return
    app.add_middleware(Guard, rules=rules, authenticator=authenticator(settings, database))


def document_access(app: FastAPI, rules: Rules) -> None:
    """/openapi.json with the guard's answers: 401 and 403 on every operation that needs
    credentials, in the error body of its path."""
    spec = app.openapi()  # cached: what is added here stays
    for path, item in spec.get("paths", {}).items():
        body = V2ErrorBody if path.startswith("/v2") else ErrorBody
        for method, operation in item.items():
            rule, _ = rules.match(method.upper(), path)
            if rule is not None and rule.allowed is PUBLIC:
                continue
            answers = operation.setdefault("responses", {})
            for status, what in (
                ("401", "No known credential"),
                ("403", "Not a role this route allows"),
            ):
                answers.setdefault(
                    status,
                    {
                        "description": what,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": _REF.format(model=body.__name__)}
                            }
                        },
                    },
                )


def operations(app: FastAPI) -> list[tuple[str, str]]:
    """``(method, path template)`` of every operation ``app`` documents."""
    return [
        (method.upper(), path)
        for path, item in app.openapi().get("paths", {}).items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    ]


def authenticator(settings: CommonSettings, database: bool = True) -> Authenticator:
    """Where ``settings`` say credentials are checked: the database's keys, a keys file,
    an OIDC issuer. None of them is a configuration error (nothing could ever pass)."""
    keys: list[KeyLookup] = []
    if settings.auth_keys_file:
        keys.append(KeyFile(settings.auth_keys_file))
    if database and settings.database_url:
        from millrace_common.db import make_engine
        from millrace_common.keys import KeyTable

        keys.append(KeyTable(make_engine(settings.database_url, pool_size=2)))
    oidc = None
    if settings.auth_oidc_issuer:
        oidc = OidcVerifier(
            issuer=settings.auth_oidc_issuer,
            audience=settings.auth_oidc_audience,
            jwks_url=settings.auth_oidc_jwks_url,
            roles_claim=settings.auth_oidc_roles_claim,
        )
    if not keys and oidc is None:
        raise MillraceError(
            "MILLRACE_AUTH is required but no credential can be checked: set "
            "MILLRACE_AUTH_KEYS_FILE or MILLRACE_AUTH_OIDC_ISSUER (or MILLRACE_AUTH=off)",
            field="auth",
        )
    return Authenticator(keys=keys, oidc=oidc, ttl=settings.auth_cache_seconds)


def health_routes(app: FastAPI, runtime: Runtime) -> None:
    app.include_router(health_router(runtime.ready))


def run(
    service: str,
    settings: ServiceSettings,
    build: Callable[[], FastAPI],
    *,
    quiet: Sequence[str] = (),
    silent: Sequence[str] = (),
    drain_timeout: float | None = None,
) -> None:
    """The body of every service's ``main``: JSON logs, the app built (a configuration
    error is one line on stderr and exit 1, never a trace), then uvicorn until a signal.
    ``quiet`` names loggers that would repeat what the service logs once itself (their
    errors still show), ``silent`` loggers whose errors the service reports itself;
    ``drain_timeout`` bounds how long a signal waits for requests under way (None: as
    long as they take) before the runtime is stopped."""
    configure_logging(service, settings.log_level)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in silent:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        app = build()
    except MillraceError as exc:
        raise SystemExit(f"millrace-{service}: {exc.message}") from None
    uvicorn.Server(server_config(app, settings, drain_timeout=drain_timeout)).run()


class ServiceSettings(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def log_level(self) -> str: ...


def server_config(
    app: FastAPI, settings: ServiceSettings, *, drain_timeout: float | None = None
) -> uvicorn.Config:
    """uvicorn's options for a service: its host and port; logging is ours (JSON), and
    an access line per request would cost more than a small model's prediction."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=drain_timeout,  # type: ignore[arg-type]  # a float works
    )


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a process another framework runs (the features worker is faust's):
    that framework owns the signals, and stops the server through ``should_exit``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
