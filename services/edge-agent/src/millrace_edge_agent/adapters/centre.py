"""The centre as the forwarders and the heartbeat see it: ingest REST and the registry.

``send`` returns only when the centre acknowledged the whole batch; it raises
``Refused`` naming the records the centre will never take (a 4xx with field errors),
and any other exception means "try again later".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

_ITEM_INDEX = re.compile(r"^(\w+)\[(\d+)\]")


class Refused(Exception):
    """The centre refused some records for good (validation): ``indices`` into the batch."""

    def __init__(self, message: str, *, indices: set[int]) -> None:
        super().__init__(message)
        self.indices = indices


class CentreUnavailable(Exception):
    """The centre did not acknowledge (down, overloaded, timed out): retry later."""


class RecordSink(Protocol):
    async def send(self, dataset: str, records: Sequence[dict[str, Any]]) -> None: ...


class PredictionLogSink(Protocol):
    async def send_predictions(self, logs: Sequence[bytes]) -> None:
        """``logs``: each a ``PredictionLogged`` as JSON."""


class IngestSink:
    """``POST {base}/v1/datasets/{dataset}/records``, ingest keeping each record's
    event_id; and ``POST {base}/v1/predictions`` for prediction logs."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(timeout=timeout)

    async def close(self) -> None:
        await self.client.aclose()

    async def send(self, dataset: str, records: Sequence[dict[str, Any]]) -> None:
        try:
            response = await self.client.post(
                f"{self.base_url}/v1/datasets/{dataset}/records", json={"records": records}
            )
        except httpx.HTTPError as exc:
            raise CentreUnavailable(f"{type(exc).__name__}: {exc}") from None
        _check(response, size=len(records), items="records")

    async def send_predictions(self, logs: Sequence[bytes]) -> None:
        body = b'{"predictions":[' + b",".join(logs) + b"]}"
        try:
            response = await self.client.post(
                f"{self.base_url}/v1/predictions",
                content=body,
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise CentreUnavailable(f"{type(exc).__name__}: {exc}") from None
        _check(response, size=len(logs), items="predictions")


def _check(response: httpx.Response, *, size: int, items: str) -> None:
    if response.status_code < 300:
        return
    if response.status_code == 422:
        raise Refused(
            response.text[:500], indices=refused_indices(response.json(), size=size, items=items)
        )
    raise CentreUnavailable(f"ingest answered {response.status_code}: {response.text[:200]}")


def refused_indices(body: Any, *, size: int, items: str = "records") -> set[int]:
    """Which of the batch's ``items`` a 422 names (``records[3].temperature``); all of
    them when it names none (an unknown dataset, say), since resending them can never
    succeed."""
    errors = body.get("errors") if isinstance(body, dict) else None
    found = {
        int(m.group(2))
        for e in errors or []
        if isinstance(e, dict)
        if (m := _ITEM_INDEX.match(str(e.get("field", "")))) and m.group(1) == items
    }
    found = {i for i in found if i < size}
    return found or set(range(size))


class HeartbeatSink(Protocol):
    async def report(self, site: str, heartbeat: dict[str, Any]) -> None: ...


class RegistryHeartbeats:
    """``POST {registry}/v1/sites/{site}/heartbeats``."""

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(timeout=timeout)

    async def close(self) -> None:
        await self.client.aclose()

    async def report(self, site: str, heartbeat: dict[str, Any]) -> None:
        try:
            response = await self.client.post(
                f"{self.base_url}/v1/sites/{site}/heartbeats", json=heartbeat
            )
        except httpx.HTTPError as exc:
            raise CentreUnavailable(f"{type(exc).__name__}: {exc}") from None
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise Refused(response.text[:500], indices={0})
        if response.status_code >= 300:
            raise CentreUnavailable(
                f"registry answered {response.status_code}: {response.text[:200]}"
            )
