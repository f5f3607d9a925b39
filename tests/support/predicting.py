"""A predict-request loop on a thread while a test swaps models underneath: every answer's
status and version, for the zero-failed-requests tests (an in-process app through its
TestClient, or a served one through an ``httpx.Client`` with its base URL)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.models import instance
from tests.support.waiting import wait_until


@dataclass
class Answers:
    results: list[tuple[int, int | None]] = field(default_factory=list)  # (status, version)
    failures: list[str] = field(default_factory=list)  # the bodies of the non-200 answers

    @property
    def versions(self) -> list[int]:
        """The version of every 200 answer, in order."""
        return [version for status, version in self.results if version is not None]

    @property
    def statuses(self) -> Counter[int]:
        return Counter(status for status, _ in self.results)

    def wait_for_more(self, count: int, *, timeout: float = 30) -> list[int]:
        """Wait until ``count`` more requests were answered; the versions that answered them."""
        seen = len(self.versions)
        wait_until(
            lambda: len(self.versions) >= seen + count,
            timeout=timeout,
            what=f"{count} more answered predictions",
            interval=0.01,
        )
        return self.versions[seen : seen + count]


@contextmanager
def predict_loop(
    client: httpx.Client,
    *,
    model: str,
    body: dict[str, Any] | None = None,
    ready: str | None = None,
) -> Iterator[Answers]:
    """Predict ``model`` back to back (``body``, by default one valid instance) until the
    block ends; with ``ready`` (what is awaited), first wait until /readyz is 200."""
    if ready is not None:
        wait_until(
            lambda: client.get("/readyz").status_code == 200,
            timeout=30,
            what=ready,
            interval=0.05,
        )
    answers = Answers()
    stop = threading.Event()
    request = body or {"instances": [instance()]}

    def run() -> None:
        while not stop.is_set():
            response = client.post(f"/v1/models/{model}/predict", json=request)
            ok = response.status_code == 200
            if not ok:
                answers.failures.append(response.text)
            answers.results.append(
                (response.status_code, response.json()["version"] if ok else None)
            )

    loop = threading.Thread(target=run, daemon=True)
    loop.start()
    try:
        yield answers
    finally:
        stop.set()
        loop.join(timeout=30)
