"""Access and size limits in front of every route, as plain ASGI (no per-request task).

API keys (``Authorization: Bearer <key>`` or ``X-API-Key``) carry scopes: ``predict`` for
the model routes (v1 and Open Inference Protocol), ``admin`` for the admin routes. Health,
readiness and metrics stay open. Bodies over the limit are a 413 before they are read.
A refusal has the app's error body (the Open Inference Protocol's under ``/v2``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from millrace_common.errors import Forbidden, InvalidInput, MillraceError, Unauthorized
from millrace_common.http import error_response, status_of
from starlette.requests import Request

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
SCOPES = frozenset({"predict", "admin"})
ACCESS_ERRORS = (401, 403, 413)
"""What the guard may answer on a protected route (401 and 403 only with API keys)."""
_PROTECTED = (
    ("/v1/admin/", "admin"),
    ("/v1/models", "predict"),
    ("/v2/models", "predict"),
    ("/v2/repository", "predict"),
)
_READ = frozenset({b"authorization", b"x-api-key"})
"""The only headers the guard looks at (ASGI servers lower-case header names)."""


def parse_api_keys(spec: str) -> dict[str, frozenset[str]]:
    """``"k1:predict,k2:predict+admin"`` → ``{"k1": {"predict"}, "k2": {...}}``."""
    keys: dict[str, frozenset[str]] = {}
    for position, item in enumerate(p.strip() for p in spec.split(",")):
        if not item:
            continue
        key, _, scopes = item.rpartition(":")
        granted = frozenset(s.strip() for s in scopes.split("+") if s.strip())
        if not key or not granted or not granted <= SCOPES:
            # the key itself is a secret: name its position, never its value
            raise InvalidInput(
                f"MILLRACE_SERVING_API_KEYS entry {position + 1} must be "
                f"key:scope[+scope] with scopes from {sorted(SCOPES)}",
                field="api_keys",
            )
        keys[key] = granted
    return keys


def needed_scope(path: str) -> str | None:
    return next((scope for prefix, scope in _PROTECTED if path.startswith(prefix)), None)


class AccessGuard:
    """API keys and their scopes; the body's size and time are the scaffold's
    ``BodyLimit``, inside this guard."""

    def __init__(self, app: ASGIApp, *, keys: dict[str, frozenset[str]]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _READ
        }
        try:
            self._authorize(scope["path"], headers)
        except MillraceError as exc:
            await _reject(scope, receive, send, exc)
            return
        await self.app(scope, receive, send)

    def _authorize(self, path: str, headers: dict[str, str]) -> None:
        scope = needed_scope(path) if self.keys else None
        if scope is None:
            return
        key = headers.get("x-api-key") or _bearer(headers.get("authorization", ""))
        if key is None or key not in self.keys:
            raise Unauthorized("an API key is required (Authorization: Bearer <key> or X-API-Key)")
        if scope not in self.keys[key]:
            raise Forbidden(f"this API key lacks the '{scope}' scope")


def _bearer(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _reject(scope: Scope, receive: Receive, send: Send, exc: MillraceError) -> None:
    """The app's own error body for ``exc``: the guard runs before the app's handlers."""
    answer = error_response(
        Request(scope), status=status_of(exc), code=exc.code, message=exc.message
    )
    await answer(scope, receive, send)
