"""What every HTTP service shares: health, readiness, metrics, the one error body and
its handlers, and the hot path's helpers (flat scoring routes, a frozen start-up heap).
The app and process around them are ``millrace_common.service``."""

from __future__ import annotations

import asyncio
import gc
import os
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from millrace_common.errors import (
    Conflict,
    FieldProblem,
    Forbidden,
    IntegrityError,
    InvalidInput,
    MillraceError,
    NotFound,
    StorageFull,
    TimedOut,
    TooLarge,
    Unauthorized,
    Unavailable,
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
    Unavailable: 503,
    TimedOut: 504,
    StorageFull: 507,
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


@dataclass(frozen=True)
class BulkRoutes:
    """Routes whose bodies are files (a model upload): a limit and a time of their own."""

    paths: re.Pattern[str]
    max_bytes: int
    timeout: float


class BodyLimit:
    """ASGI middleware, on every service (the scaffold adds it): a body over ``max_bytes``
    is a 413 in the one error body before it is read (by its Content-Length; one sent
    chunked, as soon as it passes the limit), and a body that has not all arrived within
    ``timeout`` seconds of the first read is a 408: a client that sends less than its
    Content-Length, or drips it, holds a connection that long, not for ever."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout: float = 30.0,
        bulk: BulkRoutes | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.bulk = bulk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes, timeout = self.max_bytes, self.timeout
        if self.bulk is not None and self.bulk.paths.match(scope["path"]):
            max_bytes, timeout = self.bulk.max_bytes, self.bulk.timeout
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > max_bytes:
            refused = TooLarge(f"the body is {int(length)} bytes; the limit is {max_bytes}")
            answer = error_response(
                Request(scope), status=413, code=refused.code, message=refused.message
            )
            await answer(scope, receive, send)
            return
        # a declared length is all the server reads; only a chunked body is counted
        guarded = self._guarded(
            receive, counted=not length.isdigit(), max_bytes=max_bytes, timeout=timeout
        )
        await self.app(scope, guarded, send)

    def _guarded(
        self, receive: Receive, *, counted: bool, max_bytes: int, timeout: float
    ) -> Receive:
        seen = 0
        deadline: float | None = None
        done = False

        async def guarded() -> Message:
            nonlocal seen, deadline, done
            if done:  # the body is in: what follows is a wait for the disconnect
                return await receive()
            deadline = deadline or asyncio.get_running_loop().time() + timeout
            try:
                async with asyncio.timeout_at(deadline):  # a timer, not a task per read
                    message = await receive()
            except TimeoutError:
                # raised while the route reads its body: FastAPI passes HTTPExceptions on
                # to the app's handler, which answers the one error body
                raise StarletteHTTPException(
                    408, f"the body did not arrive within {timeout:g} s"
                ) from None
            done = message["type"] != "http.request" or not message.get("more_body", False)
            seen += len(message.get("body", b""))
            if counted and seen > max_bytes:
                raise StarletteHTTPException(
                    413, f"the body exceeds the limit of {max_bytes} bytes"
                )
            return message

        return guarded


def health_router(ready: ReadyCheck) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Alive)
    async def healthz() -> Alive:
        """Alive: the process answers."""
        return Alive()

    @router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    async def readyz() -> JSONResponse:
        """Ready to do its job; 503 names what it waits for."""
        ok, detail = await ready()
        return JSONResponse({"ready": ok, "detail": detail}, status_code=200 if ok else 503)

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus metrics (text exposition format)."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


class Alive(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    ready: bool
    detail: str


class FieldProblemBody(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """The one error body of every JSON route outside ``/v2``."""

    error: str = Field(description="a stable machine-readable code, e.g. not_found")
    message: str = Field(description="what was wrong, in a sentence")
    field: str | None = Field(None, description="the request field at fault, when one is")
    errors: list[FieldProblemBody] | None = Field(
        None, description="every field at fault, when there are several"
    )


class V2ErrorBody(BaseModel):
    """The Open Inference Protocol's error body, for every error under ``/v2``."""

    error: str


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status it may answer, with the error body."""
    return {s: {"model": ErrorBody, "description": _DESCRIBED.get(s, "Error")} for s in statuses}


def v2_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for an Open Inference Protocol route."""
    return {s: {"model": V2ErrorBody, "description": _DESCRIBED.get(s, "Error")} for s in statuses}


_DESCRIBED = {
    400: "Bad request",
    401: "No or unknown credentials",
    403: "Credentials without the role the route needs",
    404: "Not found",
    408: "The body did not arrive in time",
    409: "Conflicts with the current state",
    413: "Body too large",
    422: "Invalid input; the field is named",
    503: "A dependency is away",
    504: "Timed out",
    507: "A bounded store is full",
}
_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    401: "unauthorized",
    403: "forbidden",
    408: "timeout",
    413: "too_large",
}


def error_response(
    request: Request,
    *,
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    problems: list[FieldProblem] | None = None,
) -> JSONResponse:
    """The error body for ``request``'s path: Open Inference Protocol's under /v2, ours
    everywhere else."""
    if request.url.path.startswith("/v2"):
        return JSONResponse({"error": f"{field}: {message}" if field else message}, status)
    body: dict[str, Any] = {"error": code, "message": message}
    if field:
        body["field"] = field
    if problems:
        body["errors"] = [{"field": p.field, "message": p.message} for p in problems]
    return JSONResponse(body, status_code=status)


_UNPARSEABLE = "There was an error parsing the body"  # FastAPI's 400 for an undecodable body


def install_error_handlers(app: FastAPI) -> None:
    """One error shape for every failure a client can cause: platform errors, invalid or
    unparseable bodies, unknown routes and wrong methods; a bug is one line of JSON."""

    @app.exception_handler(MillraceError)
    async def _platform_error(request: Request, exc: MillraceError) -> JSONResponse:
        answer = error_response(
            request,
            status=status_of(exc),
            code=exc.code,
            message=exc.message,
            field=exc.field,
            problems=exc.problems,
        )
        if isinstance(exc, Unavailable) and exc.retry_after is not None:
            answer.headers["Retry-After"] = str(exc.retry_after)
        return answer

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code < 400:  # pragma: no cover - redirects raised as exceptions
            return Response(status_code=exc.status_code, headers=exc.headers)
        if exc.status_code == 400 and exc.detail == _UNPARSEABLE:
            # a body FastAPI cannot even decode (not UTF-8): invalid like malformed JSON
            return error_response(
                request,
                status=422,
                code="invalid_input",
                message="body: not valid JSON (UTF-8 text)",
                field="body",
                problems=[FieldProblem("body", "not valid JSON (UTF-8 text)")],
            )
        code = _CODES.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        answer = error_response(request, status=exc.status_code, code=code, message=message)
        answer.headers.update(exc.headers or {})
        return answer

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            # malformed JSON's loc is the character it broke at: the field is the body
            FieldProblem("body", err["msg"])
            if err.get("type") == "json_invalid"
            else FieldProblem(
                ".".join(str(p) for p in err["loc"] if p != "body") or "body", err["msg"]
            )
            for err in exc.errors()
        ]
        message = "; ".join(f"{p.field}: {p.message}" for p in problems)
        return error_response(
            request,
            status=422,
            code="invalid_input",
            message=message,
            field=problems[0].field if problems else None,
            problems=problems,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A bug, not bad input: the trace goes to the log, the caller gets one line.
        A database or object store that cannot be reached is no bug: a 503 the caller
        may retry."""
        away = _AWAY.get((type(exc).__module__, type(exc).__name__))
        if away is not None:
            log.warning(
                "dependency_unreachable", what=away, path=request.url.path, error=repr(exc)[:300]
            )
            answer = error_response(
                request,
                status=503,
                code="unavailable",
                message=f"{away} is unreachable; retry shortly",
            )
            answer.headers["Retry-After"] = "2"
            return answer
        log.error(
            "request_failed",
            method=request.method,
            path=request.url.path,
            error=repr(exc),
            exc_info=exc,
        )
        return error_response(
            request,
            status=500,
            code="internal",
            message="internal error; the service log has the details",
        )


_AWAY = {
    **{
        ("sqlalchemy.exc", name): "the database"
        for name in ("OperationalError", "InterfaceError", "DisconnectionError", "TimeoutError")
    },
    **{
        ("urllib3.exceptions", name): "the object store"
        for name in (
            "MaxRetryError",
            "NewConnectionError",
            "ProtocolError",
            "ReadTimeoutError",
            "ConnectTimeoutError",
        )
    },
}
"""The errors of a dependency that cannot be reached (refused, reset, timed out), by
module and name: SQLAlchemy's and the S3 client's (urllib3's). Named, not imported: this
module must import without SQLAlchemy (the edge agent has none)."""
