"""The broker as ingest's routes see it: a send is bounded in time and its failures are
platform errors (503 with Retry-After while the broker is away, 413 for a message over its
size), never a 500 after aiokafka's own 15 s; whether the broker answers, for /readyz."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from millrace_common.errors import TooLarge, Unavailable
from millrace_common.messaging import Envelope, Producer

log = structlog.get_logger(__name__)
Item = tuple[str | None, bytes, Envelope]


class Broker:
    """Sends through ``producer``; while the last send failed, a post whose broker still
    does not answer a metadata request is refused at once instead of waiting ``timeout``."""

    def __init__(self, producer: Producer, *, timeout: float, retry_after: int) -> None:
        self.producer = producer
        self.source = producer.source
        self.timeout = timeout
        self.retry_after = retry_after
        self.away = False
        self.connected = False
        """False until the producer has started (the broker answered once)."""

    async def send_many(self, topic: str, items: Iterable[Item]) -> None:
        if not self.connected:
            raise self._unavailable("has not answered since ingest started")
        if self.away and not await self.producer.reachable(timeout=1.0):
            raise self._unavailable("does not answer")
        try:
            async with asyncio.timeout(self.timeout):
                await self.producer.send_many(topic, items)
        except MessageSizeTooLargeError:
            raise TooLarge("a record is over the broker's message size") from None
        except (KafkaError, OSError, TimeoutError) as exc:
            self.away = True
            log.warning("broker_send_failed", topic=topic, error=repr(exc))
            raise self._unavailable(f"did not take the records ({type(exc).__name__})") from None
        if self.away:
            log.info("broker_back", broker=self.producer.bootstrap)
        self.away = False

    async def ready(self) -> tuple[bool, str]:
        if await self.producer.reachable():
            self.away = False
            return True, "broker answers"
        return False, f"broker {self.producer.bootstrap} does not answer"

    def _unavailable(self, what: str) -> Unavailable:
        return Unavailable(
            f"the broker {what}; the batch was not accepted: retry it (its records keep "
            "their event ids, so any already written are not doubled)",
            retry_after=self.retry_after,
        )
