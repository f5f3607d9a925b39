"""Publishing prediction logs (from edge agents) to ``predictions``, keyed by model; the
envelope's id is the log's request id."""

from __future__ import annotations

from millrace_common.contracts import PREDICTIONS, PredictionLogged

from millrace_ingest.adapters.broker import Broker
from millrace_ingest.adapters.events_topic import publish_events


async def publish_predictions(
    broker: Broker, logs: list[PredictionLogged], *, traceparent: str
) -> None:
    events = [(log.model, log, log.request_id, log.at) for log in logs]
    await publish_events(broker, PREDICTIONS, events, traceparent=traceparent)
