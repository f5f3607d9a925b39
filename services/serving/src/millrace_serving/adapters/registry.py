"""The registry as serving sees it: which models exist, what an alias points at, and what
a registered version is (its artifact and its status)."""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

import httpx
from millrace_common.contracts import AliasTarget
from millrace_common.errors import InvalidInput

from millrace_serving.pinning import RegisteredVersion, pinned_alias


class Registry(Protocol):
    async def model_names(self) -> list[str]: ...

    async def alias_target(self, name: str, alias: str) -> AliasTarget | None: ...

    async def registered_version(self, name: str, version: int) -> RegisteredVersion | None: ...

    async def traffic_policy(self, name: str) -> dict[str, Any] | None: ...

    async def close(self) -> None: ...


class HttpRegistry:
    """The registry's REST API. What it does not have (404) is None; what it refuses as
    invalid (400, 422) is InvalidInput with its reason, naming the field serving sent;
    connection errors and any other status raise ``httpx.HTTPError``."""

    def __init__(
        self, base_url: str, *, timeout: float = 5.0, headers: dict[str, str] | None = None
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, headers=headers
        )

    async def model_names(self) -> list[str]:
        response = await self._client.get("/v1/models")
        response.raise_for_status()
        body: Any = response.json()
        models = body.get("models", []) if isinstance(body, dict) else body
        return [str(model["name"]) for model in models]

    async def alias_target(self, name: str, alias: str) -> AliasTarget | None:
        path = f"/v1/models/{_segment(name)}/aliases/{_segment(alias)}"
        response = await self._client.get(path)
        if response.status_code == 404:
            return None
        _refused(response, f"alias {alias!r} of model {name!r}", field="alias")
        return AliasTarget.model_validate(response.json())

    async def registered_version(self, name: str, version: int) -> RegisteredVersion | None:
        """A registered version as a load target (its alias is the pinned slot's)."""
        response = await self._client.get(f"/v1/models/{_segment(name)}/versions/{version}")
        if response.status_code == 404:
            return None
        _refused(response, f"version {version} of model {name!r}", field="version")
        doc = response.json()
        return RegisteredVersion(
            target=version_as_target(doc, name=name, version=version),
            status=str(doc.get("status") or ""),
            rejection_reason=doc.get("rejection_reason"),
        )

    async def traffic_policy(self, name: str) -> dict[str, Any] | None:
        """The model's traffic policy document; None when the registry does not know the
        model (or predates traffic policies), which serving reads as no policy."""
        response = await self._client.get(f"/v1/models/{_segment(name)}/traffic")
        if response.status_code == 404:
            return None
        _refused(response, f"the traffic policy of model {name!r}", field="name")
        body: Any = response.json()
        return body if isinstance(body, dict) else None

    async def close(self) -> None:
        await self._client.aclose()


def _segment(value: str) -> str:
    """``value`` as one path segment: a slash, '?' or control character stays inside it."""
    return quote(value, safe="")


def _refused(response: httpx.Response, asked: str, *, field: str) -> None:
    """InvalidInput when the registry refused what was ``asked`` as invalid; raise for
    any other error status."""
    if response.status_code in (400, 422):
        try:
            body = response.json()
        except ValueError:
            body = None
        reason = body.get("message") if isinstance(body, dict) else None
        raise InvalidInput(
            f"the registry refused {asked}: {str(reason or response.text)[:300]}", field=field
        )
    response.raise_for_status()


def version_as_target(doc: dict[str, Any], *, name: str, version: int) -> AliasTarget:
    return AliasTarget.model_validate(
        {
            "name": name,
            "version": version,
            "alias": pinned_alias(version),
            "artifact_uri": doc["artifact_uri"],
            "sha256": doc["sha256"],
            "size": doc["size"],
            "schema": doc.get("model_schema") or doc.get("schema"),
        }
    )


class MemoryRegistry:
    """In-memory fake for unit tests: ``targets[(name, alias)] = AliasTarget``,
    ``versions[(name, version)] = AliasTarget`` with ``statuses`` (default ``ready``)."""

    def __init__(
        self,
        targets: dict[tuple[str, str], AliasTarget] | None = None,
        names: list[str] | None = None,
    ) -> None:
        self.targets = dict(targets or {})
        self.extra_names = list(names or [])
        self.versions: dict[tuple[str, int], AliasTarget] = {}
        self.statuses: dict[tuple[str, int], str] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        """Traffic policy documents by model, as ``GET /v1/models/{name}/traffic``."""
        self.reachable = True

    async def model_names(self) -> list[str]:
        self._check()
        return sorted({name for name, _ in self.targets} | set(self.extra_names))

    async def alias_target(self, name: str, alias: str) -> AliasTarget | None:
        self._check()
        return self.targets.get((name, alias))

    async def registered_version(self, name: str, version: int) -> RegisteredVersion | None:
        self._check()
        found = self.versions.get((name, version))
        if found is None:
            return None
        return RegisteredVersion(
            target=found.model_copy(update={"alias": pinned_alias(version)}),
            status=self.statuses.get((name, version), "ready"),
        )

    async def traffic_policy(self, name: str) -> dict[str, Any] | None:
        self._check()
        return self.policies.get(name)

    async def close(self) -> None:
        return None

    def _check(self) -> None:
        if not self.reachable:
            raise httpx.ConnectError("registry unreachable (fake)")
