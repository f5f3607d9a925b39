"""Prediction logs to the ``predictions`` topic, off the request path: requests put
unbuilt logs on a bounded queue, a background task builds and sends them in batches.
When the queue is full or the broker is down, logs are dropped and counted, never
requests delayed."""

from __future__ import annotations

import asyncio

import structlog
from millrace_common.contracts import EVENT_TYPES, PREDICTIONS
from millrace_common.dataplane import PendingLog, cooperatively
from millrace_common.messaging import Envelope, Producer, dumps

from millrace_serving.metrics import PREDICTION_LOGS_DROPPED

log = structlog.get_logger(__name__)


class PredictionPublisher:
    def __init__(self, producer: Producer, *, maxsize: int = 10_000, batch: int = 500) -> None:
        self.producer = producer
        self.queue: asyncio.Queue[PendingLog] = asyncio.Queue(maxsize=maxsize)
        self.batch = batch

    def offer(self, pending: PendingLog) -> None:
        try:
            self.queue.put_nowait(pending)
        except asyncio.QueueFull:
            PREDICTION_LOGS_DROPPED.inc()

    async def run(self) -> None:
        while True:
            pending = [await self.queue.get()]
            while len(pending) < self.batch and not self.queue.empty():
                pending.append(self.queue.get_nowait())
            await self._send(pending)

    async def _send(self, pending: list[PendingLog]) -> None:
        items = await cooperatively(pending, self._item)
        try:
            await self.producer.send_many(PREDICTIONS, items)
        except Exception as exc:  # noqa: BLE001 - logs are best effort, serving goes on
            PREDICTION_LOGS_DROPPED.inc(len(items))
            log.warning("prediction_logs_dropped", count=len(items), error=repr(exc))

    def _item(self, pending: PendingLog) -> tuple[str, bytes, Envelope]:
        event = pending.event()
        envelope = Envelope.new(type=EVENT_TYPES[PREDICTIONS], source=self.producer.source)
        return event.model, dumps(event), envelope
