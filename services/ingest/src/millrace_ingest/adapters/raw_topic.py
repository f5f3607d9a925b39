"""Publishing accepted records to ``raw``, keyed by entity id."""

from __future__ import annotations

from typing import Any

from millrace_common.contracts import EVENT_TYPES, RAW
from millrace_common.messaging import Envelope
from millrace_common.project import Dataset

from millrace_ingest.adapters.broker import Broker


async def publish_records(
    broker: Broker,
    dataset: Dataset,
    values: list[dict[str, Any]],
    payloads: list[bytes],
    *,
    traceparent: str,
) -> None:
    """``payloads`` are ``values`` (records of ``dataset``) encoded, as the size check
    encoded them."""
    items = [
        (
            value[dataset.entity],
            payload,
            Envelope(
                id=value["event_id"],
                type=EVENT_TYPES[RAW],
                source=broker.source,
                time=value[dataset.time],
                traceparent=traceparent,
            ),
        )
        for value, payload in zip(values, payloads, strict=True)
    ]
    await broker.send_many(RAW, items)
