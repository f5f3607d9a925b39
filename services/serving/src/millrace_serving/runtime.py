"""Serving's lifecycle: connect to Kafka, follow ``model-published`` (its own consumer
group per process, from the latest offset), load the registry's aliases, keep them and
the traffic policies in step, and log predictions. Runs in the background so /healthz
answers from the start."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from millrace_common.contracts import MODEL_PUBLISHED, ModelPublished
from millrace_common.dataplane import DataPlane
from millrace_common.http import freeze_startup_heap
from millrace_common.messaging import ConsumerLoop, Poison, Producer, ensure_topics, wait_for_broker
from millrace_common.scoring import ModelSlots
from pydantic import ValidationError
from sqlalchemy import Engine

from millrace_serving.adapters.online_store import OnlineFeatures
from millrace_serving.adapters.prediction_log import PredictionPublisher
from millrace_serving.adapters.registry import Registry
from millrace_serving.admin import ModelAdmin
from millrace_serving.alias_follower import AliasFollower
from millrace_serving.config import Settings
from millrace_serving.swap import Swapper
from millrace_serving.traffic_follower import TrafficFollower

log = structlog.get_logger(__name__)
SOURCE = "serving"


def consumer_group() -> str:
    """Every serving process must see every event, so each has a group of its own."""
    return f"serving-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass
class Runtime:
    """What the routes and the background tasks share, built once by ``bootstrap``."""

    settings: Settings
    slots: ModelSlots
    plane: DataPlane
    """The one scoring path of every route: traffic policy, batching, limits, logs."""
    swapper: Swapper
    alias_follower: AliasFollower
    traffic_follower: TrafficFollower
    admin: ModelAdmin
    registry: Registry
    online: OnlineFeatures
    engine: Engine
    producer: Producer
    publisher: PredictionPublisher | None
    api_keys: dict[str, frozenset[str]]
    group_id: str = field(default_factory=consumer_group)
    stage: str = "starting"
    consumer: ConsumerLoop | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def start(self) -> None:
        self._spawn(self._run(), name="serving-start")

    async def _run(self) -> None:
        await self._connect()
        self.consumer = ConsumerLoop(
            bootstrap=self.settings.broker,
            topics=[MODEL_PUBLISHED],
            group_id=self.group_id,
            handler=self._on_record,
            producer=self.producer,
            name=SOURCE,
            auto_offset_reset="latest",
        )
        self._spawn(self.consumer.run(), name="model-published")
        self.stage = "joining the model-published consumer group"
        await self.consumer.assigned.wait()
        self.stage = "loading models from the registry"
        await self.alias_follower.sync_until_done()
        self._spawn(
            self.alias_follower.resync_forever(interval=self.settings.resync_interval),
            name="registry-resync",
        )
        await self._follow_traffic()
        if self.publisher is not None:
            self._spawn(self.publisher.run(), name="prediction-log")
        freeze_startup_heap()
        self.stage = "running"

    async def _follow_traffic(self) -> None:
        self.stage = "reading traffic policies from the registry"
        await self.traffic_follower.start()
        if self.settings.traffic_interval > 0:
            self._spawn(
                self.traffic_follower.follow_forever(interval=self.settings.traffic_interval),
                name="traffic-policies",
            )

    async def _connect(self) -> None:
        self.stage = f"waiting for the broker {self.settings.broker}"
        while True:
            try:
                await wait_for_broker(self.settings.broker, timeout=30)
                break
            except TimeoutError:
                log.warning("broker_unreachable", broker=self.settings.broker)
        await ensure_topics(self.settings.broker)
        await self.producer.start()

    async def _on_record(self, record: ConsumerRecord) -> None:
        try:
            event = ModelPublished.model_validate_json(record.value or b"")
        except ValidationError as exc:
            raise Poison(f"not a ModelPublished event: {exc}") from None
        await self.alias_follower.on_event(event)

    async def ready(self) -> tuple[bool, str]:
        consumer_task = next((t for t in self._tasks if t.get_name() == "model-published"), None)
        if consumer_task is not None and consumer_task.done():
            return False, "the model-published consumer stopped"
        if self.consumer is None or not self.consumer.assigned.is_set():
            return False, self.stage
        if not self.traffic_follower.started:
            return False, self.stage
        return self.alias_follower.readiness()

    async def stop(self) -> None:
        for task in reversed(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.producer.stop()
        await self.registry.close()
        self.engine.dispose()

    def _spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)


def _report_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background_task_crashed", task=task.get_name(), error=repr(task.exception()))
