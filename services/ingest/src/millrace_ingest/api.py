"""ingest's routes: parse, validate, publish, answer."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Body, Header, Request
from millrace_common.errors import Forbidden, InvalidInput, TooLarge
from millrace_common.http import errors
from millrace_common.identity import ADMIN, SITE_PREFIX, principal_of
from millrace_common.logs import bind_trace
from millrace_common.project import Project
from millrace_common.records import check_sizes
from millrace_common.tracing import child_of, trace_id_of
from prometheus_client import Counter
from pydantic import BaseModel, Field

from millrace_ingest.accept import accept_batch, accept_labels, accept_predictions, raw_values
from millrace_ingest.adapters.labels_topic import publish_labels
from millrace_ingest.adapters.predictions_topic import publish_predictions
from millrace_ingest.adapters.raw_topic import publish_records
from millrace_ingest.deps import RuntimeDep

log = structlog.get_logger(__name__)
ACCEPTED = Counter("millrace_ingest_records_total", "Records accepted into raw", ["dataset"])
REJECTED = Counter("millrace_ingest_rejected_batches_total", "Batches refused", ["dataset"])
PREDICTIONS_ACCEPTED = Counter(
    "millrace_ingest_prediction_logs_total", "Prediction logs accepted into predictions"
)
LABELS_ACCEPTED = Counter(
    "millrace_ingest_labels_total", "Labels accepted into labels", ["dataset"]
)
PREDICTIONS_REJECTED = Counter(
    "millrace_ingest_rejected_prediction_batches_total", "Prediction-log batches refused"
)


router = APIRouter(prefix="/v1", tags=["ingest"])


class RecordBatch(BaseModel):
    """``{"records": [...]}``: each record the dataset's fields, its entity and time,
    optionally an ``event_id`` (a resent record with the same id is recognised)."""

    records: list[Any] = Field(min_length=1)


class PredictionBatch(BaseModel):
    """``{"predictions": [PredictionLogged, ...]}``, validated one by one in the route so
    a 422 names ``predictions[i].field`` like the records route does."""

    predictions: list[Any] = Field(min_length=1)


class LabelBatch(BaseModel):
    """``{"labels": [...]}``: each names a ``request_id`` that serving answered (with a
    ``row`` for a request of several rows) or the dataset's entity and time fields, and
    one or more of the dataset's label fields; optionally ``event_id`` and
    ``observed_at`` (default now)."""

    labels: list[Any] = Field(min_length=1)


class LabelsAccepted(BaseModel):
    accepted: int
    event_ids: list[str]


class RecordsAccepted(BaseModel):
    accepted: int
    event_ids: list[str]
    trace_id: str | None


class PredictionsAccepted(BaseModel):
    accepted: int
    trace_id: str | None


class DatasetOut(BaseModel):
    name: str
    entity: str
    time: str
    fields: dict[str, str]
    labels: dict[str, str]
    optional: list[str] = []


@router.get("/datasets", response_model=list[DatasetOut])
async def list_datasets(rt: RuntimeDep) -> list[DatasetOut]:
    return [describe(name, rt.project) for name in rt.project.datasets]


@router.get("/datasets/{name}", response_model=DatasetOut, responses=errors(404))
async def get_dataset(name: str, rt: RuntimeDep) -> DatasetOut:
    rt.project.dataset(name)
    return describe(name, rt.project)


@router.post(
    "/datasets/{name}/records",
    status_code=202,
    response_model=RecordsAccepted,
    responses=errors(404, 413, 422, 503),
)
async def post_records(
    name: str,
    rt: RuntimeDep,
    batch: Annotated[RecordBatch, Body()],
    traceparent: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=200,
            description="Names this batch: a retry with the same key makes no new events "
            "(a record's event id is the key and its place in the batch, unless it has one).",
        ),
    ] = None,
) -> RecordsAccepted:
    """All of a batch, or none of it: 202 once the broker has every record; 422 names
    each bad field (``records[3].temperature``), 413 a record over the broker's message
    size; 503 with Retry-After while the broker is away. A record without ``event_id``
    gets a deterministic one, so a retried post makes no new events."""
    dataset = rt.project.dataset(name)
    _bounded(len(batch.records), rt.settings.max_records_per_request, field="records")
    try:
        values = raw_values(
            dataset, accept_batch(dataset, batch.records), idempotency_key=idempotency_key
        )
        payloads = check_sizes(values, max_bytes=rt.settings.max_record_bytes)
    except (InvalidInput, TooLarge):
        REJECTED.labels(name).inc()
        raise
    parent = child_of(traceparent)
    bind_trace(trace_id_of(parent))
    await publish_records(rt.broker, dataset, values, payloads, traceparent=parent)
    ACCEPTED.labels(name).inc(len(values))
    log.info(
        "records_accepted", dataset=name, count=len(values), first_event_id=values[0]["event_id"]
    )
    return RecordsAccepted(
        accepted=len(values),
        event_ids=[v["event_id"] for v in values],
        trace_id=trace_id_of(parent),
    )


@router.post(
    "/datasets/{name}/labels",
    status_code=202,
    response_model=LabelsAccepted,
    responses=errors(404, 422, 503),
)
async def post_labels(
    name: str,
    rt: RuntimeDep,
    batch: Annotated[LabelBatch, Body()],
    traceparent: Annotated[str | None, Header()] = None,
) -> LabelsAccepted:
    """Ground truth that arrived after the predictions, to ``labels`` (the registry's
    monitor joins it to what was served); all of a batch or none, 422 naming each bad
    field. A label without ``event_id`` gets one from its content: a resent label is
    counted as a duplicate, not used twice."""
    dataset = rt.project.dataset(name)
    _bounded(len(batch.labels), rt.settings.max_records_per_request, field="labels")
    labels = accept_labels(dataset, batch.labels)
    parent = child_of(traceparent)
    bind_trace(trace_id_of(parent))
    await publish_labels(rt.broker, labels, traceparent=parent)
    LABELS_ACCEPTED.labels(name).inc(len(labels))
    log.info("labels_accepted", dataset=name, count=len(labels))
    return LabelsAccepted(accepted=len(labels), event_ids=[label.event_id for label in labels])


@router.post(
    "/predictions",
    status_code=202,
    response_model=PredictionsAccepted,
    responses=errors(413, 422, 503),
)
async def post_predictions(
    rt: RuntimeDep,
    request: Request,
    batch: Annotated[PredictionBatch, Body()],
    traceparent: Annotated[str | None, Header()] = None,
) -> PredictionsAccepted:
    """Prediction logs from an edge agent; 202 once the broker has them all. A site's
    key speaks for its own site only: a log of another site's is a 403."""
    _bounded(len(batch.predictions), rt.settings.max_records_per_request, field="predictions")
    try:
        logs = accept_predictions(batch.predictions)
    except InvalidInput:
        PREDICTIONS_REJECTED.inc()
        raise
    caller = principal_of(request)
    if caller is not None and ADMIN not in caller.roles:
        for index, entry in enumerate(logs):
            if f"{SITE_PREFIX}{entry.site}" not in caller.roles:
                PREDICTIONS_REJECTED.inc()
                raise Forbidden(
                    f"this key speaks for {', '.join(sorted(caller.roles))}, not for site "
                    f"'{entry.site}'",
                    field=f"predictions[{index}].site",
                )
    parent = child_of(traceparent)
    bind_trace(trace_id_of(parent))
    await publish_predictions(rt.broker, logs, traceparent=parent)
    PREDICTIONS_ACCEPTED.inc(len(logs))
    log.info("prediction_logs_accepted", count=len(logs), site=logs[0].site)
    return PredictionsAccepted(accepted=len(logs), trace_id=trace_id_of(parent))


def _bounded(count: int, limit: int, *, field: str) -> None:
    if count > limit:
        raise InvalidInput(f"at most {limit} {field} per request", field=field)


def describe(name: str, project: Project) -> DatasetOut:
    dataset = project.datasets[name]
    return DatasetOut(
        name=name,
        entity=dataset.entity,
        time=dataset.time,
        fields=dataset.fields,
        labels=dataset.labels,
        optional=dataset.optional,
    )
