"""Publishing labels to ``labels``, keyed by dataset and entity (or request id)."""

from __future__ import annotations

from millrace_common.contracts import LABELS, LabelObserved

from millrace_ingest.adapters.broker import Broker
from millrace_ingest.adapters.events_topic import publish_events


async def publish_labels(broker: Broker, labels: list[LabelObserved], *, traceparent: str) -> None:
    events = [
        (f"{label.dataset}:{label.entity_id or label.request_id}", label, label.event_id, label.at)
        for label in labels
    ]
    await publish_events(broker, LABELS, events, traceparent=traceparent)
