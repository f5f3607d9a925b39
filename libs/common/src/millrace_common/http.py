"""What every HTTP service shares: health, readiness, metrics, error bodies, and the
hot path's helpers (flat scoring routes, a frozen start-up heap)."""

from __future__ import annotations

import gc
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from millrace_common.errors import (
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    MillraceError,
    NotFound,
    TimedOut,
    TooLarge,
    Unauthorized,
)

log = structlog.get_logger(__name__)
ReadyCheck = Callable[[], Awaitable[tuple[bool, str]]]
_STATUS = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    IntegrityError: 422,
    Unauthorized: 401,
    Forbidden: 403,
    TooLarge: 413,
    TimedOut: 504,
}


def status_of(exc: MillraceError) -> int:
    """The HTTP status a platform error maps to (400 when no subclass matches)."""
    return next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)


class DirectRoute(APIRoute):
    """A route whose endpoint reads the ``Request`` and returns a ``Response`` itself,
    called as ``endpoint(request, **path_params)``: FastAPI's parameter solving and
    response validation cost more than scoring a small model, so the scoring routes
    skip them. The endpoint's signature still documents the route in OpenAPI, errors
    still reach the app's handlers, and middleware is untouched."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            response: Response = await endpoint(request, **request.path_params)
            return response

        return handle


def include_flat(app: FastAPI, router: APIRouter) -> None:
    """Add ``router``'s routes to the app itself rather than as an included router, ahead
    of every other route (the docs pages included) but after those included flat before
    them. Routes are matched in order, each match a cost per request, and this FastAPI
    matches an included router's routes lazily, twice per request (to match, then to
    handle): together more than scoring a small model. Only for routers with no prefix
    or dependencies of their own, as the scoring routers are."""
    at: int = getattr(app.state, "flat_routes", 0)
    app.router.routes[at:at] = router.routes
    app.state.flat_routes = at + len(router.routes)


def telemetry() -> TelemetryConfig:
    """FastAPI's native OpenTelemetry, on when the operator asked for it (an OTLP
    endpoint or ``FASTAPI_OTEL_AUTO_CONFIGURE=true`` in the environment), else off.
    Left on with nothing configured, it still asks on every request whether a provider
    has appeared (~13 µs here, more than scoring a small model). Millrace's own trace
    ids travel in Kafka headers and logs either way."""
    wanted = os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true" or any(
        name.startswith("OTEL_EXPORTER_OTLP_") and name.endswith("ENDPOINT") for name in os.environ
    )
    return {"tracing": wanted, "metrics": wanted, "logs": wanted}


def freeze_startup_heap() -> None:
    """Exempt what start-up built (modules, sessions, the app) from garbage collection:
    those objects live as long as the process, and a full collection re-scanning them
    stalls every request in flight for 50-250 ms on a 2-core machine. Call it once the
    process has loaded its models, before it takes traffic."""
    gc.collect()
    gc.freeze()


def health_router(ready: ReadyCheck) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ok, detail = await ready()
        return JSONResponse({"ready": ok, "detail": detail}, status_code=200 if ok else 503)

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def install_error_handlers(app: FastAPI) -> None:
    """Map platform errors and request validation to clear 4xx bodies naming the field."""

    @app.exception_handler(MillraceError)
    async def _platform_error(_request: Request, exc: MillraceError) -> JSONResponse:
        status = status_of(exc)
        body = {"error": exc.code, "message": exc.message}
        if exc.field:
            body["field"] = exc.field
        return JSONResponse(body, status_code=status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A bug, not bad input: the trace goes to the log, the caller gets one line."""
        log.error(
            "request_failed",
            method=request.method,
            path=request.url.path,
            error=repr(exc),
            exc_info=exc,
        )
        return JSONResponse(
            {"error": "internal", "message": "internal error; the service log has the details"},
            status_code=500,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"] if p != "body"), "message": err["msg"]}
            for err in exc.errors()
        ]
        message = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse(
            {"error": "invalid_input", "message": message, "errors": errors}, status_code=422
        )


async def always_ready() -> tuple[bool, str]:
    return True, "ok"
