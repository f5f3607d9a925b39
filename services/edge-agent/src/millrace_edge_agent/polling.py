"""The manifest poll loop: read the site manifest every ``interval`` seconds, at once
when ``model-published`` says a model this site may run moved, and back off (with
jitter, capped) while the store cannot be read. Serving never waits for it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from millrace_common.contracts import ModelPublished

from millrace_edge_agent.backoff import next_delay
from millrace_edge_agent.metrics import MODEL_EVENTS, SYNC_FAILURES
from millrace_edge_agent.sync import Syncer, failure_reason

log = structlog.get_logger(__name__)


@dataclass
class ManifestPoller:
    syncer: Syncer
    interval: float = 5.0
    max_backoff: float = 60.0
    poll_now: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to read the manifest now instead of at the next poll."""

    async def run(self) -> None:
        """Never stops: a failed poll is logged, counted and retried later."""
        while True:
            self.poll_now.clear()  # an event during the poll below means "poll again"
            failures = await self.poll_once()
            delay = next_delay(interval=self.interval, failures=failures, cap=self.max_backoff)
            try:
                await asyncio.wait_for(self.poll_now.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def poll_once(self) -> int:
        """One poll; return the number of consecutive failures so far."""
        status = self.syncer.status
        try:
            await asyncio.to_thread(self.syncer.sync_once)
        except Exception as exc:  # noqa: BLE001 - the store may be down for hours
            reason = failure_reason(exc)
            status.consecutive_failures += 1
            status.failed(f"{reason}: {exc}")
            SYNC_FAILURES.labels(reason).inc()
            log.warning(
                "sync_failed",
                reason=reason,
                error=str(exc),
                consecutive=status.consecutive_failures,
            )
        return status.consecutive_failures

    def model_event(self, event: ModelPublished) -> None:
        """A model moved: if this site may run it, read the manifest now."""
        listed = self.syncer.listed
        known = {name for name, _alias in self.syncer.targets}
        if listed is not None and event.name not in listed | known:
            MODEL_EVENTS.labels("ignored").inc()
            return
        MODEL_EVENTS.labels("followed").inc()
        log.info("model_event", model=event.name, alias=event.alias, version=event.version)
        self.poll_now.set()
