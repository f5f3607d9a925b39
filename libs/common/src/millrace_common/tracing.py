"""W3C ``traceparent`` values: created at the front door, carried in Kafka headers."""

from __future__ import annotations

import random
import re

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


_ids = random.Random()  # seeded from the OS once; trace and span ids need no secrecy


def new_traceparent(trace_id: str | None = None) -> str:
    trace = trace_id or f"{_ids.getrandbits(128):032x}"
    return f"00-{trace}-{_ids.getrandbits(64):016x}-01"


def trace_id_of(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    return match.group(1) if match else None


def child_of(traceparent: str | None) -> str:
    """A traceparent continuing the caller's trace, or a new trace."""
    return new_traceparent(trace_id_of(traceparent))
