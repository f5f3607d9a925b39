"""Stopping within a bound: a step of a stop that waits on something outside the agent
(a broker gone, a centre that does not answer) gets the seconds left, then is left
behind. No I/O of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import structlog

log = structlog.get_logger(__name__)


def seconds_left(deadline: float) -> float:
    """Until ``deadline`` (``time.monotonic()``), never below zero."""
    return max(0.0, deadline - time.monotonic())


async def bounded(work: Awaitable[object], *, seconds: float, what: str) -> bool:
    """Await ``work`` for at most ``seconds``; past them it is cancelled and not waited
    for (a closer waiting on a dead broker may not heed a cancel at once), and the log
    says so. Return whether it finished; a failure is logged, not raised: a stop goes on."""
    task = asyncio.ensure_future(work)
    done, _pending = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        log.warning("stop_step_abandoned", step=what, after_seconds=round(seconds, 3))
        return False
    if not task.cancelled() and task.exception() is not None:
        log.warning("stop_step_failed", step=what, error=repr(task.exception()))
    return True
