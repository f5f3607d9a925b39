"""The centre as the forwarders and the heartbeat see it: ingest REST and the registry.

``send`` returns only when the centre acknowledged the whole batch; it raises
``Refused`` when the centre will never take the batch as it is (a 400, 409, 413 or 422,
or a 404 naming the dataset), naming the records at fault when the answer does
(``records[3].temperature``); any other exception means "try again later": a 5xx, 408,
429, a timeout or a dead link, and also a 401, 403, 404 or 405 naming no dataset, which
say the agent's address or credentials are wrong, not its records (dead-lettering the
queue over them would empty a site into its dead letters).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

import httpx
import orjson

_ITEM_INDEX = re.compile(r"^(\w+)\[(\d+)\]")


class Refused(Exception):
    """The centre refused the batch for good. ``indices``: the items it names (with
    ``reasons``, what it said of each); empty when it named none, so that only sending
    fewer can tell which items it refuses."""

    def __init__(
        self, message: str, *, indices: set[int], reasons: dict[int, str] | None = None
    ) -> None:
        super().__init__(message)
        self.indices = indices
        self.reasons = reasons or {}

    def reason(self, index: int) -> str:
        """What the centre said of item ``index`` (its whole answer when it named none)."""
        return self.reasons.get(index) or str(self)


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

    def __init__(
        self, base_url: str, *, timeout: float = 10.0, headers: dict[str, str] | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(timeout=timeout, headers=headers)

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


FOR_GOOD = frozenset({400, 409, 413, 422})
"""Answers about the batch's contents: sending it again as it is can never succeed."""


def _check(response: httpx.Response, *, size: int, items: str) -> None:
    if response.status_code < 300:
        return
    refused = refusal(response.status_code, _json(response), size=size, items=items)
    if refused is not None:
        raise refused
    raise CentreUnavailable(f"ingest answered {response.status_code}: {response.text[:200]}")


def refusal(status: int, body: Any, *, size: int, items: str = "records") -> Refused | None:
    """The refusal an error answer of the centre is, or None when it is worth sending the
    batch again as it is; no I/O. A refusal naming ``records[i]`` refuses those items, one
    naming the dataset every item, one naming none no item in particular (only sending
    fewer can tell)."""
    field = body.get("field") if isinstance(body, dict) else None
    if not (status in FOR_GOOD or (status == 404 and field == "dataset")):
        return None
    text = orjson.dumps(body).decode()[:300] if body is not None else ""
    message = f"the centre answered {status}: {text}"
    if field == "dataset":  # no such dataset at the centre: it refuses every record
        return Refused(message, indices=set(range(size)))
    code = body.get("error") if isinstance(body, dict) else None
    said = f"the centre answered {status}" + (f" {code}" if code else "")
    reasons = {
        i: f"{said}: {why}" for i, why in named_refusals(body, size=size, items=items).items()
    }
    return Refused(message, indices=set(reasons), reasons=reasons)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def named_refusals(body: Any, *, size: int, items: str = "records") -> dict[int, str]:
    """What the centre's error body says of each of the batch's ``items`` it names
    (``records[3].temperature: must be a number``), by index; empty when it names none."""
    if not isinstance(body, dict):
        return {}
    problems = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    if not problems and body.get("field"):
        problems = [{"field": body["field"], "message": body.get("message", "")}]
    found: dict[int, list[str]] = {}
    for problem in problems:
        field = str(problem.get("field", ""))
        match = _ITEM_INDEX.match(field)
        if match and match.group(1) == items and int(match.group(2)) < size:
            found.setdefault(int(match.group(2)), []).append(
                f"{field}: {problem.get('message', '')}"
            )
    return {i: "; ".join(messages) for i, messages in found.items()}


class HeartbeatSink(Protocol):
    async def report(self, site: str, heartbeat: dict[str, Any]) -> None: ...


class RegistryHeartbeats:
    """``POST {registry}/v1/sites/{site}/heartbeats``."""

    def __init__(
        self, base_url: str, *, timeout: float = 5.0, headers: dict[str, str] | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(timeout=timeout, headers=headers)

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
