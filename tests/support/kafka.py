"""Kafka for tests: read a topic until what the test awaits has arrived, produce with a
plain third-party client, publish a model as the registry does, send a train request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from kafka import KafkaProducer
from millrace_common.contracts import (
    DLQ,
    EVENT_TYPES,
    MODEL_PUBLISHED,
    TRAIN_REQUESTS,
    AliasTarget,
    ModelPublished,
    TrainRequest,
)
from millrace_common.messaging import Envelope, Producer, ensure_topics

from tests.support.models import published

Record: TypeAlias = ConsumerRecord[bytes, bytes]


def _every(_record: Record) -> bool:
    return True


async def read_topic(
    broker: str,
    topic: str,
    *,
    until: Callable[[list[Record]], bool],
    what: str,
    keep: Callable[[Record], bool] = _every,
    timeout: float = 60,
) -> list[Record]:
    """Every record of ``topic`` from its start that ``keep`` picks, once ``until`` holds for
    them; TimeoutError naming ``what`` if it does not within ``timeout`` seconds."""
    await ensure_topics(broker, [topic])
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=broker, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    found: list[Record] = []
    try:
        async with asyncio.timeout(timeout):
            while not until(found):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found.extend(r for r in records if keep(r))
    except TimeoutError:
        raise TimeoutError(
            f"timed out after {timeout:.0f}s waiting for {what} on {topic!r}"
            f" ({len(found)} records kept)"
        ) from None
    finally:
        await consumer.stop()
    return found


def value_of(record: Record) -> Any:
    return orjson.loads(record.value)


def values(records: Iterable[Record]) -> list[Any]:
    return [value_of(r) for r in records]


def at_least(count: int) -> Callable[[list[Record]], bool]:
    return lambda found: len(found) >= count


def distinct(field: str, count: int) -> Callable[[list[Record]], bool]:
    """Once ``count`` distinct values of the JSON ``field`` were kept (repeats included)."""
    return lambda found: len({value_of(r)[field] for r in found}) >= count


async def published_events(
    broker: str, *, model: str, count: int, timeout: float = 60
) -> list[tuple[str, ModelPublished, str]]:
    """(key, event, ce_id header) of ``model``'s events on model-published, in order."""
    found = await read_topic(
        broker,
        MODEL_PUBLISHED,
        keep=lambda r: ModelPublished.model_validate_json(r.value).name == model,
        until=at_least(count),
        what=f"{count} model-published events of {model}",
        timeout=timeout,
    )
    return [
        (
            r.key.decode(),
            ModelPublished.model_validate_json(r.value),
            dict(r.headers)["ce_id"].decode(),
        )
        for r in found
    ]


def produce_plain(
    broker: str, topic: str, values: Iterable[bytes], keys: Iterable[bytes | None]
) -> None:
    """With a plain third-party client (kafka-python): no Millrace code, no headers."""
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    for key, value in zip(keys, values, strict=True):
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


async def publish_model(broker: str, target: AliasTarget, *, name: str | None = None) -> None:
    """``target`` on model-published (under ``name``), as the registry's relay sends it."""
    event = published(target, name=name)
    key = f"{event.name}:{event.alias}"
    await _send(broker, MODEL_PUBLISHED, event, key=key, source="registry-test")


async def send_train_request(broker: str, request: TrainRequest) -> None:
    """``request`` on train-requests (the dlq made too, for the trainer's refusals)."""
    await ensure_topics(broker, [DLQ])
    await _send(broker, TRAIN_REQUESTS, request, key=request.model, source="test")


async def _send(broker: str, topic: str, event: Any, *, key: str, source: str) -> None:
    await ensure_topics(broker, [topic])
    producer = Producer(broker, source=source)
    await producer.start()
    try:
        envelope = Envelope.new(type=EVENT_TYPES[topic], source=source)
        await producer.send(topic, event, key=key, envelope=envelope)
    finally:
        await producer.stop()


async def produce_events(
    broker: str, topic: str, items: Iterable[tuple[str, Any]], *, source: str = "test"
) -> None:
    """Each ``(key, contract)`` on ``topic``, as a Millrace producer sends it."""
    await ensure_topics(broker, [topic])
    producer = Producer(broker, source=source)
    await producer.start()
    try:
        for key, event in items:
            envelope = Envelope.new(type=EVENT_TYPES[topic], source=source)
            await producer.send(topic, event, key=key, envelope=envelope)
    finally:
        await producer.stop()
