"""Prediction logs at the edge: every answered prediction (or a sampled share, see
``DataPlane.log_sample_rate``) is logged for the centre's monitoring, never delaying or
failing the prediction itself.

The data plane hands each log, unbuilt, to ``PredictionLogBuffer.offer``, which only
appends to a bounded in-memory buffer; a background task builds the logs and writes them
to the on-disk queue
in batches (one SQLite commit, so one fsync, per batch, not per prediction), and the
``PredictionLogForwarder`` sends the queued logs to the centre. A full buffer or a full
queue drops logs, never predictions, and counts every drop.

What a crash can lose: at most the unflushed buffer, the logs of the last
``flush_interval`` seconds (no more than ``max_buffer`` logs). A clean shutdown
writes the buffer out first. Each log keeps the ``request_id`` it got when it was built,
on disk and in every resend, so the centre deduplicates by it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import structlog
from millrace_common.dataplane import PendingLog, cooperatively

from millrace_edge_agent.adapters.queue.prediction_logs import PredictionLogQueue
from millrace_edge_agent.metrics import (
    PREDICTION_LOG_DEPTH,
    PREDICTION_LOGS_DROPPED,
    PREDICTION_LOGS_STORED,
)

log = structlog.get_logger(__name__)


class PredictionLogBuffer:
    def __init__(
        self,
        *,
        queue: PredictionLogQueue,
        site: str,
        max_buffer: int = 10_000,
        batch: int = 500,
        flush_interval: float = 0.25,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self.queue = queue
        self.site = site
        self.max_buffer = max_buffer
        self.batch = batch
        self.flush_interval = flush_interval
        self.on_stored = on_stored
        """Called after a batch reached the disk (the forwarder's wake-up)."""
        self._pending: deque[PendingLog] = deque()
        self._batch_ready = asyncio.Event()
        self.lost = 0
        """Logs the buffer had no room for since the last write (persisted with it)."""

    def offer(self, pending: PendingLog) -> None:
        """The data plane's sink, on the request's path: an append, nothing more."""
        if len(self._pending) >= self.max_buffer:
            self.lost += 1
            PREDICTION_LOGS_DROPPED.labels("buffer_full").inc()
            return
        self._pending.append(pending)
        if len(self._pending) == self.batch:
            self._batch_ready.set()

    @property
    def buffered(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        """Write the buffer every ``flush_interval`` seconds, or as soon as a batch fills."""
        while True:
            try:
                await asyncio.wait_for(self._batch_ready.wait(), timeout=self.flush_interval)
            except TimeoutError:
                pass
            self._batch_ready.clear()
            await self.flush()

    async def flush(self) -> int:
        """Write everything buffered, batch by batch; return how many logs were stored."""
        stored = 0
        while self._pending or self.lost:
            events = [self._pending.popleft() for _ in range(min(self.batch, len(self._pending)))]
            written = await self._write(events)
            if written is None:
                break
            stored += written
        return stored

    async def _write(self, pending: list[PendingLog]) -> int | None:
        """Store one batch; None when the disk refused it (the batch is dropped)."""
        rows = await cooperatively(pending, self._row)
        lost, self.lost = self.lost, 0
        try:
            dropped, depth = await asyncio.to_thread(self._store, rows, lost)
        except Exception as exc:  # noqa: BLE001 - a failing disk must not stop the agent
            self.lost += lost  # still to be recorded on disk, by a later write
            PREDICTION_LOGS_DROPPED.labels("write_failed").inc(len(pending))
            log.error("prediction_logs_write_failed", count=len(pending), error=repr(exc))
            return None
        if dropped:
            PREDICTION_LOGS_DROPPED.labels("queue_full_dropped_oldest").inc(dropped)
            log.warning(
                "prediction_logs_dropped",
                reason="queue_full_dropped_oldest",
                count=dropped,
                max_rows=self.queue.max_rows,
            )
        PREDICTION_LOGS_STORED.inc(len(pending))
        PREDICTION_LOG_DEPTH.set(depth)
        log.debug("prediction_logs_stored", count=len(pending), queue_depth=depth)
        if pending and self.on_stored is not None:
            self.on_stored()
        return len(pending)

    def _row(self, pending: PendingLog) -> tuple[str, bytes]:
        event = pending.event(site=self.site)
        return event.request_id, event.model_dump_json().encode()

    def _store(self, rows: list[tuple[str, bytes]], lost: int) -> tuple[int, int]:
        dropped = self.queue.append(rows, lost_in_buffer=lost)
        return dropped, self.queue.depth()
