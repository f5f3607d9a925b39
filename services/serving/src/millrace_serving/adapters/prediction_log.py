"""Prediction logs to the ``predictions`` topic, off the request path: requests put
logs on a bounded queue, a background task sends them in batches. When the queue is
full or the broker is down, logs are dropped and counted, never requests delayed."""

from __future__ import annotations

import asyncio

import structlog
from millrace_common.contracts import PREDICTIONS, PredictionLogged
from millrace_common.messaging import Envelope, Producer, dumps

from millrace_serving.metrics import PREDICTION_LOGS_DROPPED

log = structlog.get_logger(__name__)


class PredictionPublisher:
    def __init__(self, producer: Producer, *, maxsize: int = 10_000, batch: int = 500) -> None:
        self.producer = producer
        self.queue: asyncio.Queue[PredictionLogged] = asyncio.Queue(maxsize=maxsize)
        self.batch = batch

    def offer(self, event: PredictionLogged) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            PREDICTION_LOGS_DROPPED.inc()

    async def run(self) -> None:
        while True:
            events = [await self.queue.get()]
            while len(events) < self.batch and not self.queue.empty():
                events.append(self.queue.get_nowait())
            await self._send(events)

    async def _send(self, events: list[PredictionLogged]) -> None:
        items = [
            (
                e.model,
                dumps(e),
                Envelope.new(type="millrace.prediction_logged", source=self.producer.source),
            )
            for e in events
        ]
        try:
            await self.producer.send_many(PREDICTIONS, items)
        except Exception as exc:  # noqa: BLE001 - logs are best effort, serving goes on
            PREDICTION_LOGS_DROPPED.inc(len(events))
            log.warning("prediction_logs_dropped", count=len(events), error=repr(exc))
