"""The delay before the next try: the interval while all is well, exponential backoff
with jitter after failures. Pure, no I/O; every retry loop of the agent uses it."""

from __future__ import annotations

import random
from collections.abc import Callable


def next_delay(
    *, interval: float, failures: int, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """The poll interval when all is well; after failures, exponential backoff with
    jitter between the interval and a ceiling, so a fleet does not retry in step."""
    if failures <= 0:
        return interval
    ceiling = max(interval, min(cap, interval * 2 ** min(failures, 16)))
    return interval + rand() * (ceiling - interval)
