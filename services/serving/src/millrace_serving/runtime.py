"""Serving's lifecycle: serve what the on-disk cache holds, load the registry's aliases,
follow ``model-published`` (its own consumer group per process, from the latest offset),
keep the aliases and the traffic policies in step, and log predictions. Runs in the
background so /healthz answers from the start.

The registry and the broker are followed apart, each retried with backoff and jitter for
as long as it is away, so neither blocks the other: with the registry away the cache
answers, with the broker away the registry's resync keeps the versions in step; when the
broker (re)joins, one more sync catches any event missed meanwhile.

What readiness means: ``ready`` while every slot this process should serve has a model
that answers, whatever the registry or the broker are doing, so a pod that can score stays
in a load balancer's rotation (taking every pod out because the control plane is away
would turn a registry outage into a prediction outage). The detail names what is away
and every slot that differs from the registry's target and why, and the gauge
``millrace_serving_target_mismatch`` is the loud signal an alert fires on. Not ready while
an expected slot has no model at all, before the registry answered once when the cache
held nothing, and at start until ``model-published`` is joined or the broker has been
found away (5 s), so an event sent right after readiness is not missed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
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
    group_id: str = field(default_factory=consumer_group)
    stage: str = "starting"
    consumer: ConsumerLoop | None = None
    broker_away: bool = True
    """True until the broker answered, and while the last check of it failed."""
    broker_tried: bool = False
    """Whether the broker was found away, or model-published joined, at least once:
    until then readiness waits for the join (an event sent meanwhile would be missed)."""
    _producer_started: bool = False
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def start(self) -> None:
        """Serve what the cache holds before the server takes its first request (so a
        model served before a restart is never a 404 after it), then follow the registry
        and the broker in the background."""
        self.stage = "loading the models the local cache holds"
        await self.alias_follower.restore()
        self._spawn(self._follow_registry(), name="registry")
        self._spawn(self._follow_events(), name="model-published")

    async def _follow_registry(self) -> None:
        self.stage = "loading models from the registry"
        retry = self.settings.retry_max_delay
        await self.alias_follower.sync_until_done(max_delay=retry)
        await self._follow_traffic()
        freeze_startup_heap()
        self.stage = "running"
        await self.alias_follower.resync_forever(
            interval=self.settings.resync_interval, max_delay=retry
        )

    async def _follow_events(self) -> None:
        """Follow ``model-published`` for good: a consumer that fails is built again after
        a backoff, and each (re)join is followed by a sync with the registry."""
        delay = 0.5
        while True:
            try:
                await self._connect()
                await self._consume()
            except Exception as exc:  # noqa: BLE001 - the broker went away: join again
                log.warning("model_published_consumer_failed", error=repr(exc))
            self.consumer = None
            await asyncio.sleep(delay * random.uniform(0.75, 1.25))
            delay = min(self.settings.retry_max_delay, delay * 2)

    async def _consume(self) -> None:
        consumer = ConsumerLoop(
            bootstrap=self.settings.broker,
            topics=[MODEL_PUBLISHED],
            group_id=self.group_id,
            handler=self._on_record,
            producer=self.producer,
            name=SOURCE,
            auto_offset_reset="latest",
        )
        self.consumer = consumer
        running = asyncio.create_task(consumer.run(), name="model-published-consumer")
        try:
            joined = asyncio.create_task(consumer.assigned.wait())
            await asyncio.wait({running, joined}, return_when=asyncio.FIRST_COMPLETED)
            joined.cancel()
            if consumer.assigned.is_set():
                self.broker_tried = True
                log.info("model_published_joined", group=self.group_id)
                await self.alias_follower.try_sync()  # an event sent before the join
            await running
        finally:
            running.cancel()
            with contextlib.suppress(BaseException):
                await running

    async def _follow_traffic(self) -> None:
        self.stage = "reading traffic policies from the registry"
        await self.traffic_follower.start()
        if self.settings.traffic_interval > 0:
            self._spawn(
                self.traffic_follower.follow_forever(interval=self.settings.traffic_interval),
                name="traffic-policies",
            )

    async def _connect(self) -> None:
        while True:
            try:
                await wait_for_broker(
                    self.settings.broker, timeout=5 if not self.broker_tried else 30
                )
                break
            except TimeoutError:
                self.broker_tried = True
                log.warning("broker_unreachable", broker=self.settings.broker)
        await ensure_topics(self.settings.broker)
        if not self._producer_started:
            await self.producer.start()
            self._producer_started = True
            self.broker_away = False
            self._spawn(self._watch_broker(), name="broker-watch")
            if self.publisher is not None:
                self._spawn(self.publisher.run(), name="prediction-log")

    async def _watch_broker(self, *, every: float = 2.0) -> None:
        """Whether the broker answers, for readiness's detail; on its return, one sync
        with the registry (the consumer resumes by itself)."""
        while True:
            await asyncio.sleep(every)
            away = not await self.producer.reachable(timeout=every)
            if away != self.broker_away:
                (log.warning if away else log.info)(
                    "broker_unreachable" if away else "broker_reachable",
                    broker=self.settings.broker,
                )
                self.broker_away = away
                if not away:
                    await self.alias_follower.try_sync()

    async def _on_record(self, record: ConsumerRecord) -> None:
        try:
            event = ModelPublished.model_validate_json(record.value or b"")
        except ValidationError as exc:
            raise Poison(f"not a ModelPublished event: {exc}") from None
        await self.alias_follower.on_event(event)

    async def ready(self) -> tuple[bool, str]:
        """See the module's docstring for what ready means."""
        consumer_task = next((t for t in self._tasks if t.get_name() == "model-published"), None)
        if consumer_task is not None and consumer_task.done():
            return False, "the model-published consumer stopped"
        follower = self.alias_follower
        if not (follower.synced or follower.restored):
            return False, follower.readiness()[1] if follower.registry_error else self.stage
        if follower.synced and not self.traffic_follower.started:
            return False, self.stage
        if not self.broker_tried:
            return False, "joining the model-published consumer group"
        ok, detail = follower.readiness()
        return ok, "; ".join([detail, *self._broker_detail()])

    def _broker_detail(self) -> list[str]:
        if self.consumer is not None and self.consumer.assigned.is_set() and not self.broker_away:
            return []
        every = self.settings.resync_interval
        return [
            f"the broker {self.settings.broker} is unreachable: not following "
            f"model-published, the registry is read every {every:g} s"
        ]

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
