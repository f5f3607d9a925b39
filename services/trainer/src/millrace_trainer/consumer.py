"""The trainer's Kafka edge, as api.py is a service's HTTP edge: decode a record of
``train-requests`` into its contract, hand it to the handler, and say which failures can
never succeed (poison → dlq) and which are worth a redelivery."""

from __future__ import annotations

import structlog
from aiokafka import ConsumerRecord
from millrace_common.contracts import TrainRequest
from millrace_common.errors import IntegrityError, InvalidInput, NotFound
from millrace_common.logs import bind_trace
from millrace_common.messaging import Poison, header
from millrace_common.tracing import trace_id_of
from pydantic import ValidationError

from millrace_trainer.adapters.registry_client import RegistryRefused
from millrace_trainer.errors import TrainingError
from millrace_trainer.handler import TrainService

log = structlog.get_logger(__name__)
NEVER_SUCCEEDS = (TrainingError, InvalidInput, IntegrityError, NotFound, RegistryRefused)


async def handle_record(service: TrainService, record: ConsumerRecord) -> None:
    """Decode at the edge; a request that can never succeed is poison (→ dlq)."""
    try:
        request = TrainRequest.model_validate_json(record.value or b"")
    except ValidationError as exc:
        raise Poison(f"not a TrainRequest: {exc.errors()[0]['msg']}") from None
    bind_trace(trace_id_of(header(record, "traceparent")))
    try:
        await service.handle(request)
    except NEVER_SUCCEEDS as exc:
        log.warning(
            "train_request_failed",
            model=request.model,
            request_id=request.request_id,
            error=exc.message,
        )
        raise Poison(f"{exc.code}: {exc.message}") from None
