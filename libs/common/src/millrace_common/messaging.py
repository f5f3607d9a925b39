"""Kafka helpers: envelope headers, a producer, a commit-after-effect consumer and the dlq.

The embedded broker (Tansu) has no idempotent or transactional producers, so the
producer keeps idempotence off; consumers make their effects idempotent instead.
"""

from __future__ import annotations

import asyncio
import base64
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import Counter
from pydantic import BaseModel

from millrace_common.contracts import ALL_TOPICS, DLQ, EVENT_TYPES, DeadLetter
from millrace_common.errors import Unavailable
from millrace_common.kafka_security import client_options
from millrace_common.tracing import child_of

log = structlog.get_logger(__name__)

DEAD_LETTERS = Counter("millrace_dead_letters_total", "Messages sent to the dlq", ["consumer"])
DEFAULT_PARTITIONS = 4


@dataclass(frozen=True)
class Envelope:
    """The CloudEvents-style headers every Millrace producer sets."""

    id: str
    type: str
    source: str
    time: str
    traceparent: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("ce_id", self.id.encode()),
            ("ce_type", self.type.encode()),
            ("ce_source", self.source.encode()),
            ("ce_time", self.time.encode()),
            ("traceparent", self.traceparent.encode()),
        ]

    @classmethod
    def new(
        cls, *, type: str, source: str, id: str | None = None, traceparent: str | None = None
    ) -> Envelope:
        return cls(
            id=id or str(uuid.uuid4()),
            type=type,
            source=source,
            time=datetime.now(UTC).isoformat(),
            traceparent=child_of(traceparent),
        )


def header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name and value is not None:
            return value.decode(errors="replace")
    return None


def dumps(value: BaseModel | dict[str, Any]) -> bytes:
    if isinstance(value, BaseModel):
        return value.model_dump_json(by_alias=True).encode()
    return orjson.dumps(value)


def raw_event_id(record: ConsumerRecord) -> str:
    """The deterministic id of a raw record that came without one: a replay is recognised."""
    return f"{record.topic}-{record.partition}-{record.offset}"


class Producer:
    """A thin aiokafka producer: JSON values, envelope headers, acks from all replicas."""

    def __init__(
        self,
        bootstrap: str,
        *,
        source: str,
        max_batch_bytes: int = 16384,
        request_timeout_ms: int = 15000,
    ) -> None:
        """``request_timeout_ms`` bounds a send: a message the broker has not acknowledged
        by then fails (KafkaTimeoutError) rather than being sent later."""
        self.bootstrap = bootstrap
        self.source = source
        self.max_batch_bytes = max_batch_bytes
        self.request_timeout_ms = request_timeout_ms
        self._client: AIOKafkaProducer | None = None
        self._partitions: dict[bytes, int] = {}  # key -> partition, for publish()

    @property
    def _producer(self) -> AIOKafkaProducer:
        if self._client is None:
            raise RuntimeError("Producer.start() was not called")
        return self._client

    async def start(self) -> None:
        """Connect; aiokafka needs the running loop, so the client is built here."""
        self._client = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            **client_options(),
            acks="all",
            enable_idempotence=False,
            linger_ms=5,
            request_timeout_ms=self.request_timeout_ms,
            max_batch_size=self.max_batch_bytes,
        )
        await self._client.start()

    async def reachable(self, *, timeout: float = 2.0) -> bool:
        """Whether the broker answers a metadata request now (for readiness); False
        before ``start``."""
        if self._client is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self._client.client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError):
            return False
        return True

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.stop()
            self._client = None

    async def send(
        self,
        topic: str,
        value: BaseModel | dict[str, Any] | bytes,
        *,
        key: str | None,
        envelope: Envelope,
    ) -> None:
        """Send and wait for the broker's acknowledgement."""
        payload = value if isinstance(value, bytes) else dumps(value)
        await self._producer.send_and_wait(
            topic, payload, key=key.encode() if key else None, headers=envelope.headers()
        )

    async def send_many(
        self, topic: str, items: Iterable[tuple[str | None, bytes, Envelope]]
    ) -> None:
        """Send a batch and wait until every message is acknowledged."""
        futures = [
            await self._producer.send(
                topic, payload, key=key.encode() if key else None, headers=env.headers()
            )
            for key, payload, env in items
        ]
        await asyncio.gather(*futures)

    async def publish(self, topic: str, messages: Iterable[Message]) -> None:
        """Send many messages as few batches (one per partition, split when full) and
        wait until every one is acknowledged: for hot paths, where a coroutine and a
        future per message would cost more than the message. Keys go to the partition
        the default partitioner picks (murmur2, as every Kafka client)."""
        producer = self._producer
        partitions = sorted(await producer.partitions_for(topic))
        batches: dict[int, Any] = {}
        sent: list[asyncio.Future[Any]] = []
        for key, value, headers in messages:
            partition = self._partition_of(key, partitions)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                sent.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=headers)
        for partition, batch in batches.items():
            if batch.record_count():
                sent.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)

    def _partition_of(self, key: bytes | None, partitions: list[int]) -> int:
        if key is None:
            return _PARTITIONER(None, partitions, partitions)  # type: ignore[no-any-return]
        partition = self._partitions.get(key)
        if partition is None or partition not in partitions:
            if len(self._partitions) > 100_000:
                self._partitions.clear()
            partition = self._partitions[key] = _PARTITIONER(key, partitions, partitions)
        return partition


Message = tuple[bytes | None, bytes, list[tuple[str, bytes]]]
"""A message for ``Producer.publish``: key, value, headers."""
_PARTITIONER = DefaultPartitioner()


async def ensure_topics(
    bootstrap: str, topics: Iterable[str] = ALL_TOPICS, *, partitions: int = DEFAULT_PARTITIONS
) -> None:
    """Create the platform's topics if they are missing (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


Handler = Callable[[ConsumerRecord], Awaitable[None]]


class Poison(Exception):
    """A message that can never be processed: it goes to the dlq with this reason."""


@dataclass
class ConsumerLoop:
    """Consume, apply the effect, then commit: at-least-once with a dlq.

    The handler raises ``Poison`` for a message that can never succeed; any other
    exception is retried with backoff (the partition waits, nothing is skipped), at most
    ``max_retries_before_dlq`` times. ``Unavailable`` (a dependency the handler needs is
    away: the registry, the database) is retried for as long as the outage lasts and never
    dead-lettered: the message is good, its time has not come. A wait past
    ``max_poll_interval_ms`` costs the assignment; the loop's owner starts it again and
    the message is redelivered (handlers are idempotent).
    """

    bootstrap: str
    topics: list[str]
    group_id: str
    handler: Handler
    producer: Producer
    name: str
    auto_offset_reset: str = "earliest"
    max_retries_before_dlq: int = 5
    max_poll_interval_ms: int = 300_000
    retry_base: float = 0.5
    """Seconds before the first retry; each next waits twice as long, up to 30 s."""
    _consumer: AIOKafkaConsumer | None = field(default=None, init=False)
    _assigned: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    @property
    def assigned(self) -> asyncio.Event:
        return self._assigned

    async def run(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            **client_options(),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.auto_offset_reset,
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
            max_poll_interval_ms=self.max_poll_interval_ms,
        )
        await self._consumer.start()
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=200)
                if self._consumer.assignment():
                    self._assigned.set()
                for tp, records in batches.items():
                    for record in records:
                        await self._handle(record)
                        await self._consumer.commit({tp: record.offset + 1})
        finally:
            await self._consumer.stop()

    async def _handle(self, record: ConsumerRecord) -> None:
        attempt = 0  # failures other than a dependency away
        waits = 0
        while True:
            try:
                await self.handler(record)
                return
            except Poison as exc:
                await send_to_dlq(self.producer, record, reason=str(exc), consumer=self.name)
                return
            except Unavailable as exc:
                waits += 1
                log.warning(
                    "dependency_away_waiting",
                    consumer=self.name,
                    error=exc.message,
                    waited=waits,
                    topic=record.topic,
                    offset=record.offset,
                )
                await asyncio.sleep(_jittered(self.retry_base * 2 ** min(waits - 1, 10)))
                continue
            except Exception as exc:  # noqa: BLE001 - a transient failure is retried
                attempt += 1
                if attempt > self.max_retries_before_dlq:
                    await send_to_dlq(
                        self.producer, record, reason=f"gave up: {exc!r}", consumer=self.name
                    )
                    return
                log.warning(
                    "handler_failed_retrying",
                    consumer=self.name,
                    error=repr(exc),
                    attempt=attempt,
                    topic=record.topic,
                    offset=record.offset,
                )
                await asyncio.sleep(_jittered(self.retry_base * 2 ** (attempt - 1)))


def _jittered(delay: float, *, cap: float = 30.0) -> float:
    """``delay`` (at most ``cap``) spread over half to one and a half of itself: workers
    that failed together do not all come back at the same instant."""
    return min(cap, delay) * random.uniform(0.5, 1.5)


async def send_to_dlq(
    producer: Producer, record: ConsumerRecord, *, reason: str, consumer: str
) -> None:
    letter = DeadLetter(
        original=base64.b64encode(record.value or b"").decode(),
        original_key=record.key.decode(errors="replace") if record.key else None,
        error=reason,
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        consumer=consumer,
        at=datetime.now(UTC),
    )
    envelope = Envelope.new(
        type=EVENT_TYPES[DLQ], source=consumer, traceparent=header(record, "traceparent")
    )
    key = record.key.decode(errors="replace") if record.key else None
    await producer.send(DLQ, letter, key=key, envelope=envelope)
    DEAD_LETTERS.labels(consumer).inc()
    log.warning(
        "dead_lettered",
        consumer=consumer,
        reason=reason,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )


async def start_producer(bootstrap: str, *, source: str, topics: Iterable[str]) -> Producer:
    """A started producer, once ``topics`` exist (a first send cannot race their creation)."""
    await ensure_topics(bootstrap, topics)
    producer = Producer(bootstrap, source=source)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer


async def connect_retrying(
    connect: Callable[[], Awaitable[Producer]], *, broker: str, max_delay: float = 10.0
) -> Producer:
    """Call ``connect`` until the broker answers, backing off; the caller's work waits."""
    delay = 0.5
    while True:
        try:
            return await connect()
        except (KafkaError, OSError) as exc:
            log.warning("broker_unavailable", broker=broker, error=repr(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


async def wait_for_broker(bootstrap: str, *, timeout: float = 60.0) -> None:
    """Wait until the broker answers metadata requests, or raise TimeoutError."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=3000, **client_options()
        )
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"broker {bootstrap} did not answer") from None
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


__all__ = [
    "TopicPartition",
    "Envelope",
    "Producer",
    "ConsumerLoop",
    "Poison",
    "send_to_dlq",
    "ensure_topics",
    "start_producer",
    "connect_retrying",
    "wait_for_broker",
    "header",
    "raw_event_id",
    "dumps",
]
