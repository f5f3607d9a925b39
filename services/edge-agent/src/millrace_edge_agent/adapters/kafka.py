"""``model-published`` as the agent sees it: a nudge to read the site manifest now.

The event is never trusted for what to load: the registry writes the site manifest
before it publishes a move, so the agent reads (and verifies) the manifest, the same
path as a poll. That is why offsets need no care here: the group starts at the latest
event and commits nothing (a commit is what aiokafka's ``stop`` retries forever while
the broker is away), and anything missed while away is caught by polling.
A broker that cannot be reached is retried with backoff in the background; serving
and polling never wait for it, and neither does a stop: closing the consumer is
bounded by ``stop_timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from millrace_common.contracts import MODEL_PUBLISHED, ModelPublished
from millrace_common.kafka_security import client_options
from pydantic import ValidationError

from millrace_edge_agent.backoff import next_delay
from millrace_edge_agent.metrics import MODEL_EVENTS
from millrace_edge_agent.shutdown import bounded

log = structlog.get_logger(__name__)


def group_id_of(site: str, instance: str) -> str:
    """A group per agent, not per site: every agent of a site must see every event, as
    every serving pod does."""
    return f"millrace-edge-agent.{site}.{instance}"


class ModelEvents:
    def __init__(
        self,
        *,
        bootstrap: str,
        site: str,
        instance: str,
        on_event: Callable[[ModelPublished], None],
        retry_cap: float = 30.0,
        stop_timeout: float = 2.0,
        check_interval: float = 5.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id_of(site, instance)
        self.on_event = on_event
        self.retry_cap = retry_cap
        self.stop_timeout = stop_timeout
        """Seconds closing the consumer may take (leaving the group, on a dead broker)."""
        self.check_interval = check_interval
        """Seconds between checks that the broker still answers."""
        self.following = asyncio.Event()
        """Set while the consumer has its partitions (events will reach the agent)."""
        self.failures = 0

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except Exception as exc:  # noqa: BLE001 - the broker may be away for days
                self.following.clear()
                self.failures += 1
                if self.failures in (1, 10) or self.failures % 100 == 0:
                    log.warning(
                        "model_events_unavailable",
                        broker=self.bootstrap,
                        error=repr(exc),
                        consecutive=self.failures,
                    )
                await asyncio.sleep(
                    next_delay(interval=1.0, failures=self.failures, cap=self.retry_cap)
                )

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            MODEL_PUBLISHED,
            bootstrap_servers=self.bootstrap,
            **client_options(),
            group_id=self.group_id,
            auto_offset_reset="latest",
            enable_auto_commit=False,
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
        )
        try:
            await consumer.start()
            loop = asyncio.get_running_loop()
            checked, answers = loop.time(), True
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=100)
                if loop.time() - checked >= self.check_interval:
                    checked, answers = loop.time(), await _answers(consumer)
                self._following(bool(consumer.assignment()) and answers)
                for records in batches.values():
                    for record in records:
                        self._handle(record)
        finally:
            self.following.clear()
            await bounded(consumer.stop(), seconds=self.stop_timeout, what="kafka-consumer")

    def _following(self, now: bool) -> None:
        """``following`` as it is now: a consumer keeps its partitions while its broker
        is gone (it retries inside ``getmany``), so a metadata request says whether the
        broker still answers."""
        if now and not self.following.is_set():
            self.following.set()
            self.failures = 0
            log.info("model_events_following", group=self.group_id)
        elif not now and self.following.is_set():
            self.following.clear()
            log.warning("model_events_broker_away", broker=self.bootstrap)

    def _handle(self, record: ConsumerRecord) -> None:  # type: ignore[type-arg]
        try:
            event = ModelPublished.model_validate_json(record.value or b"")
        except ValidationError as exc:
            MODEL_EVENTS.labels("invalid").inc()
            log.warning("model_event_invalid", offset=record.offset, error=str(exc)[:200])
            return
        self.on_event(event)


async def _answers(consumer: AIOKafkaConsumer, *, timeout: float = 2.0) -> bool:
    """Whether the broker answers a metadata request now."""
    try:
        async with asyncio.timeout(timeout):
            await consumer.topics()
    except (KafkaError, OSError, TimeoutError):
        return False
    return True
