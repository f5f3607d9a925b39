"""A predict-request loop against an in-process edge agent, for the zero-failed-requests
tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from fastapi.testclient import TestClient

from tests.support.models import instance
from tests.support.waiting import wait_until


@dataclass
class Answers:
    failures: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)

    def wait_for_more(self, count: int, *, timeout: float = 10) -> list[int]:
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
def predict_loop(client: TestClient, *, model: str, what: str) -> Iterator[Answers]:
    """Wait until the agent is ready, then predict back to back until the block ends."""
    wait_until(
        lambda: client.get("/readyz").status_code == 200, timeout=10, what=what, interval=0.05
    )
    answers = Answers()
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            response = client.post(f"/v1/models/{model}/predict", json={"instances": [instance()]})
            if response.status_code != 200:
                answers.failures.append(response.text)
            else:
                answers.versions.append(response.json()["version"])

    loop = threading.Thread(target=run)
    loop.start()
    try:
        yield answers
    finally:
        stop.set()
        loop.join()
