"""The agent's lifecycle: serve the cached models first, then poll the manifest (sooner
when ``model-published`` says a listed model moved), forward the queue to the centre,
write and forward prediction logs, and report heartbeats, each in its own task."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
from millrace_common.contracts import ModelPublished
from millrace_common.http import freeze_startup_heap
from millrace_common.predict_api import describe
from millrace_common.project import Project
from millrace_common.scoring import ModelSlots

from millrace_edge_agent.adapters.kafka import ModelEvents
from millrace_edge_agent.adapters.mqtt import MqttRecords
from millrace_edge_agent.adapters.queue import Queues
from millrace_edge_agent.adapters.queue.records import NewRecord, QueueFull
from millrace_edge_agent.backoff import next_delay
from millrace_edge_agent.config import Settings
from millrace_edge_agent.forwarder import Forwarder, PredictionLogForwarder
from millrace_edge_agent.heartbeat import Heartbeats
from millrace_edge_agent.intake import prepare
from millrace_edge_agent.metrics import (
    DROPPED,
    MODEL_EVENTS,
    QUEUE_DEPTH,
    QUEUED,
    SYNC_FAILURES,
)
from millrace_edge_agent.mqtt_intake import MessageIntake
from millrace_edge_agent.prediction_logs import PredictionLogBuffer
from millrace_edge_agent.sync import Syncer, failure_reason

log = structlog.get_logger(__name__)


@dataclass
class EdgeRuntime:
    settings: Settings
    slots: ModelSlots
    syncer: Syncer
    queues: Queues | None = None
    forwarder: Forwarder | None = None
    heartbeats: Heartbeats | None = None
    project: Project | None = None
    instance_id: str = ""
    """This agent among its site's agents (see ``adapters.cache.instance_id``)."""
    events: ModelEvents | None = None
    mqtt: MqttRecords | None = None
    mqtt_intake: MessageIntake | None = None
    prediction_logs: PredictionLogBuffer | None = None
    prediction_forwarder: PredictionLogForwarder | None = None
    closers: list[Any] = field(default_factory=list)
    """Async ``close()`` of the adapters, called at shutdown."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    poll_now: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to read the manifest now instead of at the next poll."""

    async def start(self) -> None:
        restored = await asyncio.to_thread(self.syncer.restore)
        log.info(
            "edge_agent_started",
            site=self.settings.site,
            instance=self.instance_id,
            restored_from_disk=restored,
            cache_dir=str(self.settings.cache_path),
            queued=self.queues.records.depth() if self.queues else None,
        )
        self._spawn(self.poll_forever(), "manifest-poll")
        if self.forwarder is not None:
            self._spawn(self.forwarder.run(), "forwarder")
        if self.prediction_logs is not None:
            self._spawn(self.prediction_logs.run(), "prediction-logs")
        if self.prediction_forwarder is not None:
            self._spawn(self.prediction_forwarder.run(), "prediction-log-forwarder")
        if self.heartbeats is not None:
            self._spawn(self.heartbeats.run(), "heartbeats")
        if self.events is not None:
            self._spawn(self.events.run(), "model-events")
        if self.mqtt is not None:
            self._spawn(self.mqtt.run(), "mqtt-records")
        freeze_startup_heap()  # the cached models are open: what start-up built stays

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.prediction_logs is not None:
            await self.prediction_logs.flush()  # a clean stop loses no prediction log
        for closer in self.closers:
            await closer.close()
        if self.queues is not None:
            self.queues.close()
        log.info("edge_agent_stopped", site=self.settings.site)

    async def enqueue(self, *, dataset: str, records: list[Any]) -> list[str]:
        """Validate and store ``records`` durably; return their event ids.

        Raises RecordsInvalid, or QueueFull when full under ``reject-new``."""
        prepared = prepare(dataset=dataset, records=records, project=self.project)
        await self.store(prepared)
        return [r.event_id for r in prepared]

    async def store(self, prepared: list[NewRecord], *, count_refused: bool = True) -> None:
        """Store validated records durably, all or none, under the queue's policy.

        Raises QueueFull when full under ``reject-new`` (counted as a drop unless
        ``count_refused`` is false: the caller will offer them again)."""
        if self.queues is None:
            raise RuntimeError("this agent has no queue")
        try:
            dropped = await asyncio.to_thread(
                self.queues.records.append, prepared, count_refused=count_refused
            )
        except QueueFull:
            if count_refused:
                DROPPED.labels("queue_full_rejected").inc(len(prepared))
            raise
        for reason, count in dropped.items():
            DROPPED.labels(reason).inc(count)
            log.warning("records_dropped", reason=reason, count=count)
        QUEUED.inc(len(prepared))
        QUEUE_DEPTH.set(self.queues.records.depth())
        if self.forwarder is not None:
            self.forwarder.wakeup.set()

    async def poll_forever(self) -> None:
        """Never stops serving: a failed poll is logged, counted and retried later."""
        while True:
            self.poll_now.clear()  # an event during the poll below means "poll again"
            failures = await self.poll_once()
            delay = next_delay(
                interval=self.settings.poll_interval,
                failures=failures,
                cap=self.settings.max_backoff,
            )
            try:
                await asyncio.wait_for(self.poll_now.wait(), timeout=delay)
            except TimeoutError:
                pass

    def model_event(self, event: ModelPublished) -> None:
        """A model moved: if this site may run it, read the manifest now."""
        listed = self.syncer.listed
        known = {name for name, _alias in self.syncer.targets}
        if listed is not None and event.name not in listed | known:
            MODEL_EVENTS.labels("ignored").inc()
            return
        MODEL_EVENTS.labels("followed").inc()
        log.info("model_event", model=event.name, alias=event.alias, version=event.version)
        self.poll_now.set()

    async def poll_once(self) -> int:
        """One poll; return the number of consecutive failures so far."""
        status = self.syncer.status
        try:
            await asyncio.to_thread(self.syncer.sync_once)
        except Exception as exc:  # noqa: BLE001 - the store may be down for hours
            reason = failure_reason(exc)
            status.consecutive_failures += 1
            status.failed(f"{reason}: {exc}")
            SYNC_FAILURES.labels(reason).inc()
            log.warning(
                "sync_failed",
                reason=reason,
                error=str(exc),
                consecutive=status.consecutive_failures,
            )
        return status.consecutive_failures

    async def ready(self) -> tuple[bool, str]:
        if len(self.slots) == 0:
            return False, "no model loaded yet"
        return True, f"{len(self.slots)} model(s) loaded"

    def describe(self) -> dict[str, Any]:
        status = self.syncer.status
        return {
            "site": self.settings.site,
            "instance_id": self.instance_id,
            "models": [describe(model, alias) for (_n, alias), model in self.slots.items()],
            "last_sync": status.last_sync.isoformat() if status.last_sync else None,
            "last_error": self.last_error(),
            "last_error_at": status.last_error_at.isoformat() if status.last_error_at else None,
            "consecutive_failures": status.consecutive_failures,
            "model_events": self.describe_events(),
            "mqtt": self.describe_mqtt(),
            **self.describe_queue(),
            "prediction_logs": self.describe_prediction_logs(),
        }

    def last_error(self) -> str | None:
        forward = self.forwarder.status if self.forwarder else None
        if forward is not None and forward.consecutive_failures:
            return forward.last_error
        return self.syncer.status.last_error

    def describe_events(self) -> str:
        if self.events is None:
            return "off"
        return "following" if self.events.following.is_set() else "connecting"

    def describe_mqtt(self) -> dict[str, Any]:
        if self.mqtt is None or self.mqtt_intake is None:
            return {"state": "off"}
        status = self.mqtt_intake.status
        return {
            "state": "subscribed" if self.mqtt.subscribed.is_set() else "connecting",
            "broker": str(self.mqtt.address),
            "topic": self.mqtt.topic_filter,
            "messages_queued": status.queued,
            "messages_invalid": status.invalid,
            "last_invalid": status.last_invalid,
            "waiting_for_room": status.waiting_for_room,
        }

    def describe_queue(self) -> dict[str, Any]:
        if self.queues is None:
            return {}
        queue = self.queues.records
        forward = self.forwarder.status if self.forwarder else None
        age = queue.oldest_age()
        return {
            "queue_depth": queue.depth(),
            "queue_oldest_age_seconds": round(age, 3) if age is not None else None,
            "queue_policy": queue.policy,
            "drops": queue.drops(),
            "forwarded": forward.forwarded if forward else 0,
            "forward_mode": self.settings.forward_mode,
            **(
                {"aggregate_window_seconds": self.settings.aggregate_window_seconds}
                if self.settings.forward_mode == "aggregate"
                else {}
            ),
            "records_in": forward.records_in if forward else 0,
            "records_out": forward.forwarded if forward else 0,
            "last_forward": forward.last_forward.isoformat()
            if forward and forward.last_forward
            else None,
            "forward_failures": forward.consecutive_failures if forward else 0,
        }

    def describe_prediction_logs(self) -> dict[str, Any]:
        if self.prediction_logs is None or self.queues is None:
            return {"state": "off"}
        queue = self.queues.prediction_logs
        drops = queue.drops()
        if self.prediction_logs.lost:  # not on disk yet: written with the next batch
            drops["buffer_full"] = drops.get("buffer_full", 0) + self.prediction_logs.lost
        forward = self.prediction_forwarder.status if self.prediction_forwarder else None
        return {
            "sample_rate": self.settings.prediction_sample_rate,
            "buffered": self.prediction_logs.buffered,
            "queue_depth": queue.depth(),
            "max_rows": queue.max_rows,
            "drops": drops,
            "forwarded": forward.forwarded if forward else 0,
            "last_forward": forward.last_forward.isoformat()
            if forward and forward.last_forward
            else None,
            "forward_failures": forward.consecutive_failures if forward else 0,
            "last_error": forward.last_error if forward else None,
        }

    def heartbeat(self) -> dict[str, Any]:
        """What the registry keeps per site."""
        state = self.describe()
        return {
            "site": state["site"],
            "models": [
                {"name": m["name"], "alias": m["alias"], "version": m["version"]}
                for m in state["models"]
            ],
            "last_sync": state["last_sync"],
            "queue_depth": state.get("queue_depth", 0),
            "drops": sum(state.get("drops", {}).values()),
            "prediction_log_drops": sum(state["prediction_logs"].get("drops", {}).values()),
            "last_error": state["last_error"],
        }
