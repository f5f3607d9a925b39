"""Forwarding with local pre-aggregation (``forward_mode: aggregate``).

Records are queued on disk exactly as in raw mode, so a crash loses nothing. Each
round, the forwarder asks the queue which windows it holds, keeps the closed ones
(``preaggregation.closed_windows``), turns each into one record and sends them in one batch;
only once the centre acknowledged that batch are the source rows deleted, in the same
transaction that records how far each entity's windows were sent. After a crash the
same rows give the same aggregates with the same event ids, so the centre drops the
repeat. A record that arrives for a window already sent is dropped and counted
(``late_for_window``): its aggregate left without it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import structlog
from millrace_common.project import Project

from millrace_edge_agent.adapters.queue.dead_letters import Letter
from millrace_edge_agent.adapters.queue.records import Queued
from millrace_edge_agent.adapters.queue.windows import RecordWindows
from millrace_edge_agent.forwarder import Delivery, Forwarder
from millrace_edge_agent.metrics import DROPPED, QUEUE_DEPTH
from millrace_edge_agent.preaggregation import WindowSummary, closed_windows, summarise

log = structlog.get_logger(__name__)

Window = tuple[WindowSummary, list[Queued]]
Sent = tuple[Window, dict]  # type: ignore[type-arg]
"""A window and the aggregate that stands for it."""


@dataclass(kw_only=True)
class AggregatingForwarder(Forwarder):
    windows: RecordWindows
    project: Project
    site: str
    width: int
    grace: float
    clock: Callable[[], float] = field(default=time.time)

    async def forward_once(self) -> int:
        """Send the closed windows' aggregates; return how many queued records left."""
        await self._expire()
        await self._drop_late()
        unplaced = await asyncio.to_thread(
            self.queue.peek, self.next_batch, without_event_time=True
        )
        if unplaced:  # queued before aggregation was on: they go as they are
            return await self._forward_raw(unplaced)
        windows = await asyncio.to_thread(self._closed_windows)
        if len(windows) < self.next_batch:
            self.limit = None  # the backlog is out: full batches again
        if not windows:
            QUEUE_DEPTH.set(self.queue.depth())
            return 0
        sent = [(window, self._summarise(*window)) for window in windows]
        how = Delivery[Sent](
            send=lambda items: self.sink.send(items[0][0][0].dataset, [a for _w, a in items]),
            acknowledged=lambda items: self._acknowledged([w for w, _a in items]),
            refused=self._refused_windows,
        )
        try:
            _done, moved = await self.deliver(sent, how)
        except Exception as exc:  # noqa: BLE001 - the link may be down for days
            self._failed(exc)
            return 0
        return moved

    async def _drop_late(self) -> None:
        late = await asyncio.to_thread(self.windows.drop_late)
        if late:
            DROPPED.labels("late_for_window").inc(late)
            log.warning("records_late_for_window", count=late, window=self.width)

    def _closed_windows(self) -> list[Window]:
        """Up to ``next_batch`` closed windows of one dataset, oldest first, with rows."""
        closed = closed_windows(
            self.windows.summaries(width=self.width),
            width=self.width,
            grace=self.grace,
            now=self.clock(),
        )
        chosen = (
            [w for w in closed if w.dataset == closed[0].dataset][: self.next_batch]
            if closed
            else []
        )
        return [(w, self.windows.rows(w, width=self.width)) for w in chosen]

    def _summarise(self, summary: WindowSummary, rows: list[Queued]) -> dict:  # type: ignore[type-arg]
        return summarise(
            dataset=self.project.dataset(summary.dataset),
            site=self.site,
            entity_id=summary.entity_id,
            start=summary.start,
            width=self.width,
            records=[q.record for q in rows],
        )

    async def _acknowledged(self, windows: list[Window]) -> int:
        seqs = [q.seq for _summary, rows in windows for q in rows]
        closed_until: dict[tuple[str, str], float] = {}
        for summary, _rows in windows:
            key = (summary.dataset, summary.entity_id)
            closed_until[key] = max(closed_until.get(key, 0.0), summary.start + self.width)
        await asyncio.to_thread(self.windows.ack, seqs, closed_until=closed_until)
        self._succeeded(len(windows), records_in=len(seqs))  # logs records_forwarded
        return len(seqs)

    async def _refused_windows(self, refused: list[tuple[Sent, str]]) -> int:
        """The rows of each refused aggregate leave the queue; the aggregate, as sent, is
        the dead letter."""
        seqs = [q.seq for ((_summary, rows), _a), _r in refused for q in rows]
        letters = [
            Letter("centre", summary.dataset, reason, orjson.dumps(aggregate))
            for ((summary, _rows), aggregate), reason in refused
        ]
        await self._dead_letter(seqs, letters)
        reason = refused[0][1]
        self.status.last_error = (
            f"centre refused {len(refused)} aggregate(s) of {len(seqs)} record(s): {reason}"
        )
        log.error(
            "aggregates_refused_by_centre",
            aggregates=len(refused),
            records=len(seqs),
            dataset=refused[0][0][0][0].dataset,
            reason=reason,
        )
        return len(seqs)
