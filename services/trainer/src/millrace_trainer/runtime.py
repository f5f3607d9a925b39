"""What the trainer runs on: the train service and the consumer loop that feeds it
(group ``trainer``), started and stopped with the app."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress

import structlog
from aiokafka.errors import KafkaError
from millrace_common.contracts import TRAIN_REQUESTS
from millrace_common.messaging import ConsumerLoop, Producer, connect_retrying

from millrace_trainer.config import Settings
from millrace_trainer.consumer import handle_record
from millrace_trainer.handler import TrainService

log = structlog.get_logger(__name__)
ConnectProducer = Callable[[], Awaitable[Producer]]


class Runtime:
    def __init__(
        self, *, settings: Settings, service: TrainService, connect_producer: ConnectProducer
    ) -> None:
        self.settings = settings
        self.service = service
        self.loop: ConsumerLoop | None = None
        self._connect_producer = connect_producer
        self._producer: Producer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="trainer-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            await self._producer.stop()

    async def ready(self) -> tuple[bool, str]:
        if self.loop is not None and self.loop.assigned.is_set():
            return True, "consuming train-requests"
        return False, "waiting for the broker and a partition assignment"

    async def _run(self) -> None:
        producer = await self._connect()
        while True:
            self.loop = ConsumerLoop(
                bootstrap=self.settings.broker,
                topics=[TRAIN_REQUESTS],
                group_id=self.settings.group_id,
                producer=producer,
                name="trainer",
                handler=lambda record: handle_record(self.service, record),
            )
            try:
                await self.loop.run()
            except KafkaError as exc:
                log.warning("consumer_failed_restarting", error=repr(exc))
                await asyncio.sleep(2.0)

    async def _connect(self) -> Producer:
        self._producer = await connect_retrying(self._connect_producer, broker=self.settings.broker)
        return self._producer
