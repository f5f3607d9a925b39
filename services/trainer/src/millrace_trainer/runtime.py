"""What the trainer runs on: the train service and the consumer loop that feeds it
(group ``trainer``), started and stopped with the app."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from contextlib import suppress

import structlog
from aiokafka.errors import KafkaError
from millrace_common.contracts import TRAIN_REQUESTS
from millrace_common.messaging import ConsumerLoop, Producer, connect_retrying

from millrace_trainer.adapters.registry_client import RegistryRefused
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
        self._swept = False

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
        """Red, naming it, while the broker or the registry does not answer."""
        broker, registry = self.settings.broker, self.settings.registry_url
        if self._producer is None or not await self._producer.reachable():
            return False, f"broker {broker} does not answer"
        if not await self.service.registry_answers():
            return False, f"registry {registry} does not answer"
        if not self._swept:
            return False, "failing the runs a previous start left running"
        if self.loop is not None and self.loop.assigned.is_set():
            return True, "consuming train-requests"
        return False, "waiting for a partition assignment"

    async def _run(self) -> None:
        producer = await self._connect()
        await self._fail_interrupted()
        while True:
            self.loop = ConsumerLoop(
                bootstrap=self.settings.broker,
                topics=[TRAIN_REQUESTS],
                group_id=self.settings.group_id,
                producer=producer,
                name="trainer",
                handler=lambda record: handle_record(self.service, record),
                # a training, or a wait for the registry, may outlast the default 5 minutes
                max_poll_interval_ms=3_600_000,
            )
            try:
                await self.loop.run()
            except KafkaError as exc:
                log.warning("consumer_failed_restarting", error=repr(exc))
                await asyncio.sleep(2.0)

    async def _fail_interrupted(self) -> None:
        """Before consuming: a run this trainer left ``running`` (killed mid-run) is failed
        with the reason, retried with backoff while the registry is away."""
        delay = 0.5
        while True:
            try:
                failed = await self.service.fail_interrupted()
            except RegistryRefused as exc:
                log.error("interrupted_runs_not_failed", error=exc.message)
                break
            except Exception as exc:  # noqa: BLE001 - the registry is away: wait for it
                log.warning("interrupted_runs_waiting_for_registry", error=repr(exc))
                await asyncio.sleep(delay + random.uniform(0, delay / 2))
                delay = min(delay * 2, 10.0)
                continue
            if failed:
                log.info("interrupted_runs_failed", count=failed)
            break
        self._swept = True

    async def _connect(self) -> Producer:
        self._producer = await connect_retrying(self._connect_producer, broker=self.settings.broker)
        return self._producer
