"""Records from a local MQTT broker: each message goes through the same intake as a
REST request (validation, event ids, the disk queue and its full-queue policy), and one
no record can be taken from becomes a dead letter with its reason, never a silent drop.
Messages that arrive together are queued together, one fsync for the lot.

A message over ``max_message_bytes``, or carrying a record over ``max_record_bytes``
once encoded, is a dead letter saying so (its first bytes kept), as REST answers 413.

The topic names the dataset: the level written ``{dataset}`` in the configured pattern
(``millrace/{site}/{dataset}/records`` by default). The payload is one JSON record or a
JSON list of them. A record without an ``event_id`` gets one derived from the site, the
topic and the payload, so a message the broker delivers again (its PUBACK was lost in a
crash) is recognised as a repeat, by the queue and then by the centre.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import structlog
from millrace_common.errors import InvalidInput, MillraceError, NotFound, TooLarge
from millrace_common.project import Project

from millrace_edge_agent.adapters.queue.records import NewRecord, QueueFull
from millrace_edge_agent.backoff import next_delay
from millrace_edge_agent.intake import prepare
from millrace_edge_agent.metrics import DEAD_LETTERS, MQTT_MESSAGES

log = structlog.get_logger(__name__)

DATASET = "{dataset}"


class MessageInvalid(InvalidInput):
    """No record can be taken from this message; the reason says why."""


@dataclass(frozen=True)
class TopicPattern:
    """Where the dataset sits in a topic, and the filter that subscribes to them all."""

    filter: str
    level: int

    @classmethod
    def parse(cls, pattern: str, *, site: str) -> TopicPattern:
        levels = pattern.replace("{site}", site).split("/")
        if levels.count(DATASET) != 1:
            raise InvalidInput(
                f"mqtt_topic {pattern!r} must have exactly one level that is {DATASET}",
                field="mqtt_topic",
            )
        if "#" in levels[:-1] or any("{" in lv for lv in levels if lv != DATASET):
            raise InvalidInput(
                f"mqtt_topic {pattern!r}: '#' may only end it, and only {{site}} and "
                f"{DATASET} are filled in",
                field="mqtt_topic",
            )
        level = levels.index(DATASET)
        return cls(filter="/".join("+" if lv == DATASET else lv for lv in levels), level=level)

    def dataset_of(self, topic: str) -> str:
        levels = topic.split("/")
        dataset = levels[self.level] if len(levels) > self.level else ""
        if not dataset:
            raise MessageInvalid(f"topic {topic!r} names no dataset", field="topic")
        return dataset


def records_of(*, site: str, topic: str, payload: bytes, max_records: int) -> list[Any]:
    """The records a message carries, each with an event id (its own, or a derived one)."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise MessageInvalid(f"payload is not JSON: {exc}", field="payload") from None
    records = [body] if isinstance(body, dict) else body
    if not isinstance(records, list) or not records:
        raise MessageInvalid(
            "payload must be a JSON object (a record) or a non-empty list of them",
            field="payload",
        )
    if len(records) > max_records:
        raise MessageInvalid(f"at most {max_records} records per message", field="payload")
    digest = hashlib.sha256(b"\0".join([site.encode(), topic.encode(), payload])).hexdigest()
    return [
        {**r, "event_id": f"mqtt:{digest[:32]}:{i}"}
        if isinstance(r, dict) and r.get("event_id") is None
        else r
        for i, r in enumerate(records)
    ]


class DeadLetters(Protocol):
    def add(self, *, source: str, topic: str, reason: str, payload: bytes) -> None: ...


Store = Callable[..., Awaitable[int]]
"""``RecordIntake.store``: the REST path's queueing, under the queue's policy."""


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes


@dataclass
class IntakeStatus:
    queued: int = 0
    """Messages whose records are on disk."""
    invalid: int = 0
    """Messages kept as dead letters instead."""
    waiting_for_room: bool = False
    last_invalid: str | None = None


@dataclass
class MessageIntake:
    site: str
    pattern: TopicPattern
    project: Project | None
    store: Store
    dead_letters: DeadLetters
    max_records: int = 5000
    """Per message; no more than the queue holds, or it could never be queued."""
    max_message_bytes: int | None = None
    """The largest payload (None: no bound)."""
    max_record_bytes: int | None = None
    """The largest record, JSON-encoded (None: no bound)."""
    full_retry_cap: float = 5.0
    status: IntakeStatus = field(default_factory=IntakeStatus)

    async def take(self, messages: Sequence[Incoming]) -> None:
        """Return once every message's records are durably queued or it is a dead
        letter: only then may the broker forget them. The records of the valid ones go
        to disk in one transaction (one fsync for the lot). Raises on anything else
        (the disk), so the messages stay with the broker."""
        accepted: list[tuple[Incoming, list[NewRecord]]] = []
        refused: list[tuple[Incoming, MillraceError]] = []
        for message in messages:
            try:
                accepted.append((message, self._prepare(message)))
            except (InvalidInput, NotFound, TooLarge) as exc:
                refused.append((message, exc))
        await self._store(accepted)
        for message, error in refused:
            await self._dead_letter(message, error)
        self.status.queued += len(accepted)
        MQTT_MESSAGES.labels("queued").inc(len(accepted))
        summary = log.warning if refused else log.info  # each dead letter: debug
        summary(
            "mqtt_messages_taken",
            queued=len(accepted),
            records=sum(len(records) for _m, records in accepted),
            invalid=len(refused),
            last_invalid=self.status.last_invalid if refused else None,
        )

    def _prepare(self, message: Incoming) -> list[NewRecord]:
        size = len(message.payload)
        if self.max_message_bytes is not None and size > self.max_message_bytes:
            raise TooLarge(
                f"the message is {size} bytes; the limit is {self.max_message_bytes}",
                field="payload",
            )
        dataset = self.pattern.dataset_of(message.topic)
        records = records_of(
            site=self.site,
            topic=message.topic,
            payload=message.payload,
            max_records=self.max_records,
        )
        return prepare(
            dataset=dataset,
            records=records,
            project=self.project,
            max_record_bytes=self.max_record_bytes,
        )

    async def _store(self, accepted: list[tuple[Incoming, list[NewRecord]]]) -> None:
        """All at once; when that does not fit a ``reject-new`` queue, one message at a
        time, each waiting for room."""
        if not accepted:
            return
        try:
            await self.store([r for _m, records in accepted for r in records], count_refused=False)
        except QueueFull:
            for _message, records in accepted:
                await self._store_when_room(records)

    async def _store_when_room(self, records: list[NewRecord]) -> None:
        """A full queue leaves the message with the broker: no PUBACK until there is
        room, so the broker keeps it, and what follows, instead of the agent refusing it."""
        waits = 0
        while True:
            try:
                await self.store(records, count_refused=False)
                break
            except QueueFull as exc:
                if not waits:
                    MQTT_MESSAGES.labels("deferred_queue_full").inc()
                    log.warning("mqtt_intake_waits_for_room", error=str(exc))
                waits += 1
                self.status.waiting_for_room = True
                await asyncio.sleep(
                    next_delay(interval=0.2, failures=waits, cap=self.full_retry_cap)
                )
        self.status.waiting_for_room = False

    async def _dead_letter(self, message: Incoming, exc: MillraceError) -> None:
        reason = (
            "; ".join(f"{p.field}: {p.message}" for p in exc.problems[:5])
            if exc.problems
            else exc.message
        )
        await asyncio.to_thread(
            self.dead_letters.add,
            source="mqtt",
            topic=message.topic,
            reason=reason,
            payload=message.payload,
        )
        self.status.invalid += 1
        self.status.last_invalid = f"{message.topic}: {reason}"
        MQTT_MESSAGES.labels("invalid").inc()
        DEAD_LETTERS.labels("mqtt").inc()
        log.debug(
            "mqtt_message_invalid", topic=message.topic, reason=reason, size=len(message.payload)
        )
