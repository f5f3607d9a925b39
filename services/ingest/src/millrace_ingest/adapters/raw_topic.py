"""Publishing accepted records to ``raw``, keyed by entity id."""

from __future__ import annotations

from typing import Any

import orjson
from millrace_common.contracts import EVENT_TYPES, RAW
from millrace_common.messaging import Envelope, Producer


async def publish_records(
    producer: Producer, values: list[dict[str, Any]], *, traceparent: str
) -> None:
    items = [
        (
            value["entity_id"],
            orjson.dumps(value),
            Envelope(
                id=value["event_id"],
                type=EVENT_TYPES[RAW],
                source=producer.source,
                time=value["ts"],
                traceparent=traceparent,
            ),
        )
        for value in values
    ]
    await producer.send_many(RAW, items)
