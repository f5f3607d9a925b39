"""Training through the real pipeline, for the integration tests: a train request for a
snapshot, and the registry's documents once the trainer has produced what is awaited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from millrace_common.contracts import SnapshotRef, TrainRequest

from tests.support.waiting import until

MODEL = "machine-failure"


def train_request(
    snapshot: SnapshotRef, request_id: str, *, model: str = MODEL, reason: str = "integration test"
) -> TrainRequest:
    return TrainRequest(
        request_id=request_id,
        model=model,
        snapshot=snapshot,
        reason=reason,
        requested_by="pytest",
        requested_at=datetime.now(UTC),
    )


async def registry_document(
    registry_url: str,
    path: str,
    *,
    ready: Callable[[Any], bool] = bool,
    what: str | None = None,
    timeout: float = 120,
) -> Any:
    """The JSON at ``path`` once it answers 200 with a document ``ready`` accepts (by
    default: one that is not empty)."""
    async with httpx.AsyncClient(base_url=registry_url, timeout=10) as client:

        async def fetch() -> Any:
            response = await client.get(path)
            if response.status_code == 200 and ready(doc := response.json()):
                return doc
            return None

        return await until(fetch, timeout=timeout, what=what or path, interval=0.2)


async def versions_when(
    registry_url: str, count: int, *, model: str = MODEL, timeout: float = 120
) -> list[dict[str, Any]]:
    """``model``'s versions once there are at least ``count``."""
    return await registry_document(  # type: ignore[no-any-return]
        registry_url,
        f"/v1/models/{model}/versions",
        ready=lambda versions: len(versions) >= count,
        what=f"{count} versions of {model}",
        timeout=timeout,
    )
