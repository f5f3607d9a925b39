"""Publishing contracts to a topic as ingest does: each with an envelope whose id is the
event's own (a resent event is recognisable by its headers as well as by its value)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from millrace_common.contracts import EVENT_TYPES
from millrace_common.messaging import Envelope, dumps
from pydantic import BaseModel

from millrace_ingest.adapters.broker import Broker

Event = tuple[str, BaseModel, str, datetime]
"""The key, the contract, its id and its time."""


async def publish_events(
    broker: Broker, topic: str, events: Iterable[Event], *, traceparent: str
) -> None:
    items = [
        (
            key,
            dumps(value),
            Envelope(
                id=event_id,
                type=EVENT_TYPES[topic],
                source=broker.source,
                time=at.isoformat(),
                traceparent=traceparent,
            ),
        )
        for key, value, event_id, at in events
    ]
    await broker.send_many(topic, items)
