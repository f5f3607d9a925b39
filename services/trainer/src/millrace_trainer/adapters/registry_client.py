"""The registry as the trainer sees it: a small port, and its HTTP adapter."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import httpx
import structlog
from millrace_common.contracts import AliasTarget
from millrace_common.errors import MillraceError, Unavailable

log = structlog.get_logger(__name__)


class RegistryRefused(MillraceError):
    """The registry answered 4xx: sending the same thing again cannot succeed."""

    code = "registry_refused"


class RegistryUnavailable(Unavailable):
    """The registry did not answer (in time); the train request waits for it, however long
    the outage (never dead-lettered)."""


class RegistryPort(Protocol):
    async def find_version(self, *, name: str, request_id: str) -> dict[str, Any] | None: ...

    async def alias(self, *, name: str, alias: str) -> AliasTarget | None: ...

    async def register(self, *, name: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def upload(self, *, name: str, upload_id: str) -> dict[str, Any] | None: ...

    async def record_run(self, *, name: str, run_id: str, body: dict[str, Any]) -> None: ...

    async def running_runs(self, *, name: str) -> list[dict[str, Any]]: ...

    async def reachable(self) -> bool: ...


class HttpRegistry:
    """Retries transport errors and 5xx answers with backoff for ``retry_seconds``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        retry_seconds: float = 120.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._retry_seconds = retry_seconds
        self._headers = headers or {}
        """The trainer's credential (role ``trainer``), on every call."""

    async def find_version(self, *, name: str, request_id: str) -> dict[str, Any] | None:
        found = await self._call(
            "GET", f"/v1/models/{name}/versions", params={"request_id": request_id}
        )
        return found[0] if found else None

    async def alias(self, *, name: str, alias: str) -> AliasTarget | None:
        found = await self._call("GET", f"/v1/models/{name}/aliases/{alias}")
        return None if found is None else AliasTarget.model_validate(found)

    async def upload(self, *, name: str, upload_id: str) -> dict[str, Any] | None:
        found = await self._call("GET", f"/v1/models/{name}/uploads/{upload_id}")
        return None if found is None else dict(found)

    async def register(self, *, name: str, body: dict[str, Any]) -> dict[str, Any]:
        found = await self._call("POST", f"/v1/models/{name}/versions", json=body)
        if found is None:
            raise RegistryRefused(f"the registry has no route to register '{name}'")
        return found  # type: ignore[no-any-return]

    async def record_run(self, *, name: str, run_id: str, body: dict[str, Any]) -> None:
        await self._call("PUT", f"/v1/models/{name}/runs/{run_id}", json=body)

    async def running_runs(self, *, name: str) -> list[dict[str, Any]]:
        """The model's runs still ``running`` (none for a model the registry lacks)."""
        found = await self._call(
            "GET", f"/v1/models/{name}/runs", params={"status": "running", "limit": 500}
        )
        return found or []

    async def reachable(self) -> bool:
        """Whether the registry answers its /readyz now (one try, for readiness)."""
        try:
            async with httpx.AsyncClient(base_url=self._base_url, timeout=2.0) as client:
                return (await client.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer, or None for a 404."""
        deadline = asyncio.get_running_loop().time() + self._retry_seconds
        delay = 0.5
        while True:
            try:
                return await self._once(method, path, **kwargs)
            except RegistryUnavailable as exc:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise
                log.warning("registry_unavailable_retrying", path=path, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _once(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            async with httpx.AsyncClient(
                base_url=self._base_url, timeout=self._timeout, headers=self._headers
            ) as client:
                response = await client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"{method} {path}: {exc!r}") from None
        if response.status_code == 404:
            return None
        if response.status_code >= 500:
            raise RegistryUnavailable(f"{method} {path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise RegistryRefused(
                f"{method} {path}: HTTP {response.status_code} {response.text[:500]}"
            )
        return response.json()
