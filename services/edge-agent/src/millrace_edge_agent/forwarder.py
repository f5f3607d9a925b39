"""Forwarding the queue to the centre: oldest first, one batch in flight, rows deleted
only once the centre acknowledged them.

One batch at a time in queue order keeps every entity's records in order; a batch the
centre half-took before the link broke is sent again whole, and the centre drops the
repeats by event id. Failures back off exponentially with jitter, capped, and nothing
is dropped while the centre is away or failing (a 5xx, a timeout, a dead link).

What the centre refuses for good never holds up what follows it: the records it names
(``records[3].temperature``) leave the queue as dead letters with its reason, and the
rest are sent at once; a refusal that names none (a body over its size limit, say) is
narrowed down by halving the batch until the record at fault is alone, and the batch
size stays halved while the backlog lasts. Prediction logs go the same way in a loop
of their own (``PredictionLogForwarder``), so neither kind waits behind the other; a
resent log carries its request id, the centre's key to drop the repeat.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

import orjson
import structlog

from millrace_edge_agent.adapters.centre import PredictionLogSink, RecordSink, Refused
from millrace_edge_agent.adapters.queue.dead_letters import Letter
from millrace_edge_agent.adapters.queue.prediction_logs import PredictionLogQueue
from millrace_edge_agent.adapters.queue.records import Queued, RecordQueue
from millrace_edge_agent.backoff import next_delay
from millrace_edge_agent.metrics import (
    DEAD_LETTERS,
    DROPPED,
    FORWARD_FAILURES,
    FORWARD_RECORDS_IN,
    FORWARD_RECORDS_OUT,
    FORWARDED,
    PREDICTION_LOG_DEPTH,
    PREDICTION_LOG_FORWARD_FAILURES,
    PREDICTION_LOGS_DROPPED,
    PREDICTION_LOGS_FORWARDED,
    QUEUE_DEPTH,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Delivery(Generic[T]):
    """How one kind of item is sent and what becomes of it: each callback returns how
    many queued rows left the queue."""

    send: Callable[[Sequence[T]], Awaitable[None]]
    acknowledged: Callable[[Sequence[T]], Awaitable[int]]
    refused: Callable[[list[tuple[T, str]]], Awaitable[int]]
    """Items the centre refused for good, each with what it said of it."""


@dataclass
class ForwardStatus:
    forwarded: int = 0
    """Records the centre acknowledged (an aggregate counts once)."""
    records_in: int = 0
    """Queued records those stood for (equal to ``forwarded`` when forwarding raw)."""
    last_forward: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0


@dataclass(kw_only=True)
class ForwardLoop(ABC):
    """What both forwarders share: batch after batch while there is something to send,
    exponential backoff with jitter (capped) while the centre fails, and an idle wait
    that ``wakeup`` cuts short when something new is queued."""

    batch_size: int = 500
    retry_base: float = 0.5
    retry_cap: float = 30.0
    idle_wait: float = 1.0
    rand: Callable[[], float] = random.random
    status: ForwardStatus = field(default_factory=ForwardStatus)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    limit: int | None = None
    """The batch size a refusal naming no item taught (the centre's body limit, say);
    None once the backlog is sent: ``batch_size`` again."""

    @property
    def next_batch(self) -> int:
        return min(self.limit or self.batch_size, self.batch_size)

    async def deliver(self, items: Sequence[T], how: Delivery[T]) -> tuple[int, int]:
        """Send ``items``; return how many of them were sent or refused, and how many
        queued rows left the queue. Items a refusal names leave at once, the rest go
        next round; a refusal naming none halves the batch, and the next rounds keep
        that size, until one item alone is refused (it was the cause, not the size). Raises what the
        centre's failure raised (try later), once what was done is on disk."""
        try:
            await how.send(items)
        except Refused as exc:
            if exc.indices:
                named = [(items[i], exc.reason(i)) for i in sorted(exc.indices)]
                return len(named), await how.refused(named)
            if len(items) == 1:  # the one at fault, not the batch's size: full batches again
                self.limit = None
                return 1, await how.refused([(items[0], exc.reason(0))])
            half = len(items) // 2
            self.limit = half  # the rest go next round, in batches of this size
            log.info("forward_batch_halved", refused=len(items), next=half, error=str(exc))
            return await self.deliver(items[:half], how)
        return len(items), await how.acknowledged(items)

    @abstractmethod
    async def forward_once(self) -> int:
        """Send the oldest batch; return how many queued rows left the queue."""

    async def run(self) -> None:
        while True:
            if await self.forward_once():
                continue
            if self.status.consecutive_failures:
                await asyncio.sleep(
                    next_delay(
                        interval=self.retry_base,
                        failures=self.status.consecutive_failures,
                        cap=self.retry_cap,
                        rand=self.rand,
                    )
                )
            else:
                await self._idle()

    async def _idle(self) -> None:
        self.wakeup.clear()
        try:
            await asyncio.wait_for(self.wakeup.wait(), timeout=self.idle_wait)
        except TimeoutError:
            pass


@dataclass(kw_only=True)
class Forwarder(ForwardLoop):
    queue: RecordQueue
    sink: RecordSink

    async def forward_once(self) -> int:
        """Send the oldest batch; return how many records left the queue (0: none did)."""
        await self._expire()
        batch = await asyncio.to_thread(self.queue.peek, self.next_batch)
        if len(batch) < self.next_batch:
            self.limit = None  # the backlog is out: full batches again
        if not batch:
            QUEUE_DEPTH.set(0)
            return 0
        return await self._forward_raw(batch)

    async def _expire(self) -> None:
        expired = await asyncio.to_thread(self.queue.expire)
        if expired:
            DROPPED.labels("expired").inc(expired)
            log.warning("records_expired", count=expired, max_age=self.queue.max_age)

    async def _forward_raw(self, batch: list[Queued]) -> int:
        how = Delivery[Queued](
            send=lambda items: self.sink.send(items[0].dataset, [q.record for q in items]),
            acknowledged=self._acknowledged_raw,
            refused=self._refused_raw,
        )
        try:
            _done, moved = await self.deliver(batch, how)
        except Exception as exc:  # noqa: BLE001 - the link may be down for days
            self._failed(exc)
            return 0
        return moved

    async def _acknowledged_raw(self, items: Sequence[Queued]) -> int:
        await asyncio.to_thread(self.queue.ack, [q.seq for q in items])
        self._succeeded(len(items))
        return len(items)

    async def _refused_raw(self, refused: list[tuple[Queued, str]]) -> int:
        letters = [
            Letter("centre", q.dataset, reason, orjson.dumps(q.record)) for q, reason in refused
        ]
        await self._dead_letter([q.seq for q, _r in refused], letters)
        first, reason = refused[0]
        self.status.last_error = f"centre refused {len(refused)} record(s): {reason}"
        log.error(
            "records_refused_by_centre",
            count=len(refused),
            dataset=first.dataset,
            first_event_id=first.event_id,
            reason=reason,
        )
        return len(refused)

    async def _dead_letter(self, seqs: list[int], letters: list[Letter]) -> None:
        """Drop ``seqs`` (counted as ``refused_by_centre``), keeping ``letters``."""
        await asyncio.to_thread(
            self.queue.reject, seqs, reason="refused_by_centre", letters=letters
        )
        DROPPED.labels("refused_by_centre").inc(len(seqs))
        DEAD_LETTERS.labels("centre").inc(len(letters))

    def _failed(self, exc: Exception) -> None:
        self.status.consecutive_failures += 1
        self.status.last_error = f"forward failed: {exc}"
        FORWARD_FAILURES.inc()
        if (
            self.status.consecutive_failures in (1, 10)
            or self.status.consecutive_failures % 100 == 0
        ):
            log.warning(
                "forward_failed", error=str(exc), consecutive=self.status.consecutive_failures
            )

    def _succeeded(self, count: int, *, records_in: int | None = None) -> None:
        if self.status.consecutive_failures:
            log.info("forward_resumed", after_failures=self.status.consecutive_failures)
        records_in = count if records_in is None else records_in
        self.status.consecutive_failures = 0
        self.status.forwarded += count
        self.status.records_in += records_in
        self.status.last_forward = datetime.now(UTC)
        FORWARDED.inc(count)
        FORWARD_RECORDS_OUT.inc(count)
        FORWARD_RECORDS_IN.inc(records_in)
        depth = self.queue.depth()
        QUEUE_DEPTH.set(depth)
        log.info("records_forwarded", sent=count, records_in=records_in, queue_depth=depth)


@dataclass(kw_only=True)
class PredictionLogForwarder(ForwardLoop):
    """The queued prediction logs to the centre, with the records' retry and backoff."""

    queue: PredictionLogQueue
    sink: PredictionLogSink

    async def forward_once(self) -> int:
        """Send the oldest batch; return how many logs left the queue (0: none did)."""
        batch = await asyncio.to_thread(self.queue.peek, self.next_batch)
        if len(batch) < self.next_batch:
            self.limit = None
        if not batch:
            return 0
        how = Delivery[tuple[int, bytes]](
            send=lambda items: self.sink.send_predictions([body for _seq, body in items]),
            acknowledged=self._acknowledged,
            refused=self._refused,
        )
        try:
            _done, moved = await self.deliver(batch, how)
        except Exception as exc:  # noqa: BLE001 - the link may be down for days
            self._failed(exc)
            return 0
        return moved

    async def _acknowledged(self, batch: Sequence[tuple[int, bytes]]) -> int:
        depth = await asyncio.to_thread(self._ack, [seq for seq, _body in batch])
        if self.status.consecutive_failures:
            log.info("prediction_logs_forward_resumed", after=self.status.consecutive_failures)
        self.status.consecutive_failures = 0
        self.status.forwarded += len(batch)
        self.status.records_in += len(batch)
        self.status.last_forward = datetime.now(UTC)
        PREDICTION_LOGS_FORWARDED.inc(len(batch))
        PREDICTION_LOG_DEPTH.set(depth)
        log.info("prediction_logs_forwarded", count=len(batch), queue_depth=depth)
        return len(batch)

    def _ack(self, seqs: list[int]) -> int:
        self.queue.ack(seqs)
        return self.queue.depth()

    async def _refused(self, refused: list[tuple[tuple[int, bytes], str]]) -> int:
        """Dropped and counted (monitoring data: no dead letter)."""
        seqs = [seq for (seq, _body), _reason in refused]
        await asyncio.to_thread(self.queue.reject, seqs, reason="refused_by_centre")
        PREDICTION_LOGS_DROPPED.labels("refused_by_centre").inc(len(seqs))
        reason = refused[0][1]
        self.status.last_error = f"centre refused {len(seqs)} prediction log(s): {reason}"
        log.error("prediction_logs_refused_by_centre", count=len(seqs), reason=reason)
        return len(seqs)

    def _failed(self, exc: Exception) -> None:
        self.status.consecutive_failures += 1
        self.status.last_error = f"prediction logs forward failed: {exc}"
        PREDICTION_LOG_FORWARD_FAILURES.inc()
        failures = self.status.consecutive_failures
        if failures in (1, 10) or failures % 100 == 0:
            log.warning("prediction_logs_forward_failed", error=str(exc), consecutive=failures)
