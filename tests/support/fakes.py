"""In-memory stand-ins for the ports unit tests replace: the Kafka producer, and the
centre the edge agent forwards to. (The object store's is ``MemoryStore``, serving's
registry client's ``MemoryRegistry``: both ship with the code.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import orjson
from millrace_edge_agent.adapters.centre import CentreUnavailable, Refused


class FakeProducer:
    """``millrace_common.messaging.Producer`` without a broker: what was sent, in order."""

    def __init__(self, source: str = "test") -> None:
        self.source = source
        self.sent: list[tuple[str, str | None, bytes]] = []

    async def send(self, topic: str, value: bytes, *, key: str | None, envelope: Any) -> None:
        self.sent.append((topic, key, value))

    async def send_many(self, topic: str, items: list[tuple[str, bytes, Any]]) -> None:
        self.sent.extend((topic, key, value) for key, value, _envelope in items)

    async def stop(self) -> None:
        return None

    @property
    def values(self) -> list[Any]:
        """The JSON values sent, in order."""
        return [orjson.loads(value) for _topic, _key, value in self.sent]


class FakeCentre:
    """The centre's ingest as the edge agent's forwarders see it: ``up``, ``down``, or
    ``ack-lost`` (it takes a batch and the answer is lost, so the agent cannot know it
    arrived). It refuses records colder than zero and prediction logs with a negative
    latency, naming their indices, as ingest's 422 does."""

    def __init__(self) -> None:
        self.state: Literal["up", "down", "ack-lost"] = "up"
        self.received: list[dict[str, Any]] = []  # records or prediction logs, as taken
        self.datasets: list[str] = []  # the dataset of each record taken
        self.attempts: list[list[str]] = []  # the request ids of each prediction-log batch

    @property
    def by_dataset(self) -> list[tuple[str, dict[str, Any]]]:
        return list(zip(self.datasets, self.received, strict=True))

    async def send(self, dataset: str, records: Sequence[dict[str, Any]]) -> None:
        self._reachable()
        bad = {i for i, r in enumerate(records) if r["temperature"] < 0}
        if bad:
            raise Refused("temperature below zero", indices=bad)
        self.received.extend(records)
        self.datasets.extend(dataset for _ in records)
        self._answer()

    async def send_predictions(self, logs: Sequence[bytes]) -> None:
        self._reachable()
        values = [orjson.loads(body) for body in logs]
        self.attempts.append([v["request_id"] for v in values])
        bad = {i for i, v in enumerate(values) if v["latency_ms"] < 0}
        if bad:
            raise Refused("latency_ms below zero", indices=bad)
        self.received.extend(values)
        self._answer()

    def _reachable(self) -> None:
        if self.state == "down":
            raise CentreUnavailable("connection refused")

    def _answer(self) -> None:
        if self.state == "ack-lost":
            raise CentreUnavailable("the answer was lost (read timeout)")
