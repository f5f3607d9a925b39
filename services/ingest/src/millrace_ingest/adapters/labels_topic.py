"""Publishing labels to ``labels``, keyed by dataset and entity (or request id)."""

from __future__ import annotations

from millrace_common.contracts import EVENT_TYPES, LABELS, LabelObserved
from millrace_common.messaging import Envelope, dumps

from millrace_ingest.adapters.broker import Broker


async def publish_labels(broker: Broker, labels: list[LabelObserved], *, traceparent: str) -> None:
    items = [
        (
            f"{label.dataset}:{label.entity_id or label.request_id}",
            dumps(label),
            Envelope(
                id=label.event_id,
                type=EVENT_TYPES[LABELS],
                source=broker.source,
                time=label.at.isoformat(),
                traceparent=traceparent,
            ),
        )
        for label in labels
    ]
    await broker.send_many(LABELS, items)
