"""The one way a test waits: on a condition, with a generous bound, failing loudly with a
message that names what was awaited. The thread flavour is ``millrace_cli.processes.
wait_until`` (``millrace dev`` waits with it too); ``until`` is the same for a coroutine,
and the condition may itself be a coroutine function."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

from millrace_cli.processes import wait_until

__all__ = ["until", "wait_until"]

T = TypeVar("T")


async def until(
    check: Callable[[], T | None | Awaitable[T | None]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Await until ``check()`` is truthy and return it; TimeoutError naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)
