"""Asking the features service for a snapshot and a train request (its on-demand route),
as the monitor does when a model's live quality falls below its threshold."""

from __future__ import annotations

import httpx
from millrace_common.errors import Unavailable


class FeaturesClient:
    def __init__(self, base_url: str, *, headers: dict[str, str], timeout: float = 60.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = headers
        self._timeout = timeout

    def ask_retrain(self, model: str, *, reason: str, requested_by: str) -> str:
        """The queued train request's id; ``Unavailable`` naming why it was not queued."""
        url = f"{self._base_url}/v1/models/{model}/train-requests"
        body = {"reason": reason[:2000], "requested_by": requested_by}
        try:
            answer = httpx.post(url, json=body, headers=self._headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise Unavailable(f"features at {self._base_url}: {type(exc).__name__}") from None
        if answer.status_code != 202:
            raise Unavailable(f"features answered {answer.status_code}: {answer.text[:300]}")
        return str(answer.json()["request_id"])
