"""Heartbeats to the registry: the site's state, queued on disk first, so while the link
is down they pile up (bounded) and the centre later sees the whole outage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from millrace_edge_agent.adapters.centre import HeartbeatSink, Refused
from millrace_edge_agent.adapters.queue.heartbeats import HeartbeatQueue
from millrace_edge_agent.metrics import HEARTBEAT_FAILURES

log = structlog.get_logger(__name__)


@dataclass
class Heartbeats:
    site: str
    queue: HeartbeatQueue
    sink: HeartbeatSink
    state: Callable[[], dict[str, Any]]
    interval: float = 30.0

    async def run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.interval)

    async def beat(self) -> int:
        """Queue the current state, then send what is queued; return how many were sent."""
        body = {**self.state(), "sent_at": datetime.now(UTC).isoformat()}
        await asyncio.to_thread(self.queue.push, body)
        return await self.flush()

    async def flush(self, *, batch: int = 100) -> int:
        sent = 0
        while pending := await asyncio.to_thread(self.queue.peek, batch):
            for seq, body in pending:
                try:
                    await self.sink.report(self.site, body)
                except Refused as exc:
                    log.error("heartbeat_refused", error=str(exc))
                except Exception as exc:  # noqa: BLE001 - kept on disk, sent next time
                    HEARTBEAT_FAILURES.inc()
                    log.info("heartbeat_deferred", error=str(exc))
                    return sent
                await asyncio.to_thread(self.queue.ack, seq)
                sent += 1
        return sent
