"""Forwarding the queue to the centre: oldest first, one batch in flight, rows deleted
only once the centre acknowledged them.

One batch at a time in queue order keeps every entity's records in order; a batch the
centre half-took before the link broke is sent again whole, and the centre drops the
repeats by event id. Failures back off exponentially with jitter, capped. Prediction
logs go the same way in a loop of their own (``PredictionLogForwarder``), so neither
kind waits behind the other; a resent log carries its request id, the centre's key to
drop the repeat.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from millrace_edge_agent.adapters.centre import PredictionLogSink, RecordSink, Refused
from millrace_edge_agent.adapters.queue.prediction_logs import PredictionLogQueue
from millrace_edge_agent.adapters.queue.records import Queued, RecordQueue
from millrace_edge_agent.backoff import next_delay
from millrace_edge_agent.metrics import (
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
        batch = await asyncio.to_thread(self.queue.peek, self.batch_size)
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
        try:
            await self.sink.send(batch[0].dataset, [q.record for q in batch])
        except Refused as exc:
            return await self._refused(batch, exc)
        except Exception as exc:  # noqa: BLE001 - the link may be down for days
            self._failed(exc)
            return 0
        await asyncio.to_thread(self.queue.ack, [q.seq for q in batch])
        self._succeeded(len(batch))
        return len(batch)

    async def _refused(self, batch: list, exc: Refused) -> int:  # type: ignore[type-arg]
        seqs = [q.seq for i, q in enumerate(batch) if i in exc.indices]
        await asyncio.to_thread(self.queue.reject, seqs, reason="refused_by_centre")
        DROPPED.labels("refused_by_centre").inc(len(seqs))
        self.status.last_error = f"centre refused {len(seqs)} record(s): {exc}"
        log.error(
            "records_refused_by_centre",
            count=len(seqs),
            dataset=batch[0].dataset,
            first_event_id=batch[0].event_id,
            error=str(exc),
        )
        return len(seqs)

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
        batch = await asyncio.to_thread(self.queue.peek, self.batch_size)
        if not batch:
            return 0
        try:
            await self.sink.send_predictions([body for _seq, body in batch])
        except Refused as exc:
            return await self._refused(batch, exc)
        except Exception as exc:  # noqa: BLE001 - the link may be down for days
            self._failed(exc)
            return 0
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

    async def _refused(self, batch: list[tuple[int, bytes]], exc: Refused) -> int:
        seqs = [seq for i, (seq, _body) in enumerate(batch) if i in exc.indices]
        await asyncio.to_thread(self.queue.reject, seqs, reason="refused_by_centre")
        PREDICTION_LOGS_DROPPED.labels("refused_by_centre").inc(len(seqs))
        self.status.last_error = f"centre refused {len(seqs)} prediction log(s): {exc}"
        log.error("prediction_logs_refused_by_centre", count=len(seqs), error=str(exc))
        return len(seqs)

    def _failed(self, exc: Exception) -> None:
        self.status.consecutive_failures += 1
        self.status.last_error = f"prediction logs forward failed: {exc}"
        PREDICTION_LOG_FORWARD_FAILURES.inc()
        failures = self.status.consecutive_failures
        if failures in (1, 10) or failures % 100 == 0:
            log.warning("prediction_logs_forward_failed", error=str(exc), consecutive=failures)
