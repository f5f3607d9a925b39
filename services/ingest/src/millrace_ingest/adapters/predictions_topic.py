"""Publishing prediction logs (from edge agents) to ``predictions``, keyed by model."""

from __future__ import annotations

from millrace_common.contracts import EVENT_TYPES, PREDICTIONS, PredictionLogged
from millrace_common.messaging import Envelope, dumps

from millrace_ingest.adapters.broker import Broker


async def publish_predictions(
    broker: Broker, logs: list[PredictionLogged], *, traceparent: str
) -> None:
    """The envelope's id is the log's request id, so a resent log is recognisable by
    its headers as well as by its value."""
    items = [
        (
            log.model,
            dumps(log),
            Envelope(
                id=log.request_id,
                type=EVENT_TYPES[PREDICTIONS],
                source=broker.source,
                time=log.at.isoformat(),
                traceparent=traceparent,
            ),
        )
        for log in logs
    ]
    await broker.send_many(PREDICTIONS, items)
