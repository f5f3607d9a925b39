"""ingest: the REST front door into ``raw``, and into ``predictions`` for the prediction
logs of edge agents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import structlog
import uvicorn
from fastapi import Body, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from millrace_common.contracts import PREDICTIONS, RAW
from millrace_common.errors import InvalidInput
from millrace_common.http import health_router, install_error_handlers, telemetry
from millrace_common.logs import bind_trace, configure_logging
from millrace_common.messaging import Producer, ensure_topics, wait_for_broker
from millrace_common.project import Project, load_project
from millrace_common.tracing import child_of, trace_id_of
from prometheus_client import Counter
from pydantic import BaseModel, Field

from millrace_ingest.accept import BatchInvalid, accept_batch, accept_predictions, raw_value
from millrace_ingest.adapters.predictions_topic import publish_predictions
from millrace_ingest.adapters.raw_topic import publish_records
from millrace_ingest.config import Settings

log = structlog.get_logger(__name__)
ACCEPTED = Counter("millrace_ingest_records_total", "Records accepted into raw", ["dataset"])
REJECTED = Counter("millrace_ingest_rejected_batches_total", "Batches refused", ["dataset"])
PREDICTIONS_ACCEPTED = Counter(
    "millrace_ingest_prediction_logs_total", "Prediction logs accepted into predictions"
)
PREDICTIONS_REJECTED = Counter(
    "millrace_ingest_rejected_prediction_batches_total", "Prediction-log batches refused"
)


class RecordBatch(BaseModel):
    records: list[Any] = Field(min_length=1)


class PredictionBatch(BaseModel):
    """``{"predictions": [PredictionLogged, ...]}``, validated one by one in the route so
    a 422 names ``predictions[i].field`` like the records route does."""

    predictions: list[Any] = Field(min_length=1)


class Runtime:
    """What the routes need, built once at start-up."""

    def __init__(self, *, settings: Settings, project: Project, producer: Producer) -> None:
        self.settings = settings
        self.project = project
        self.producer = producer
        self.started = False


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await wait_for_broker(runtime.settings.broker)
        await ensure_topics(runtime.settings.broker, [RAW, PREDICTIONS])
        await runtime.producer.start()
        runtime.started = True
        yield
        await runtime.producer.stop()

    app = FastAPI(title="Millrace ingest", lifespan=lifespan, telemetry=telemetry())
    app.state.runtime = runtime
    install_error_handlers(app)

    async def ready() -> tuple[bool, str]:
        return runtime.started, "producer started" if runtime.started else "starting"

    app.include_router(health_router(ready))

    @app.exception_handler(BatchInvalid)
    async def _batch_invalid(_request: Request, exc: BatchInvalid) -> JSONResponse:
        errors = [{"field": r.field, "message": r.message} for r in exc.rejections]
        return JSONResponse(
            {"error": exc.code, "message": exc.message, "field": exc.field, "errors": errors},
            status_code=422,
        )

    @app.get("/v1/datasets")
    async def list_datasets(rt: RuntimeDep) -> list[dict[str, Any]]:
        return [_describe(name, rt.project) for name in rt.project.datasets]

    @app.get("/v1/datasets/{name}")
    async def get_dataset(name: str, rt: RuntimeDep) -> dict[str, Any]:
        rt.project.dataset(name)
        return _describe(name, rt.project)

    @app.post("/v1/datasets/{name}/records", status_code=202)
    async def post_records(
        name: str,
        rt: RuntimeDep,
        batch: Annotated[RecordBatch, Body()],
        traceparent: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        dataset = rt.project.dataset(name)
        if len(batch.records) > rt.settings.max_records_per_request:
            raise InvalidInput(
                f"at most {rt.settings.max_records_per_request} records per request",
                field="records",
            )
        try:
            values = [raw_value(r) for r in accept_batch(dataset, batch.records)]
        except BatchInvalid:
            REJECTED.labels(name).inc()
            raise
        parent = child_of(traceparent)
        bind_trace(trace_id_of(parent))
        await publish_records(rt.producer, values, traceparent=parent)
        ACCEPTED.labels(name).inc(len(values))
        log.info(
            "records_accepted",
            dataset=name,
            count=len(values),
            first_event_id=values[0]["event_id"],
        )
        return {
            "accepted": len(values),
            "event_ids": [v["event_id"] for v in values],
            "trace_id": trace_id_of(parent),
        }

    @app.post("/v1/predictions", status_code=202)
    async def post_predictions(
        rt: RuntimeDep,
        batch: Annotated[PredictionBatch, Body()],
        traceparent: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        """Prediction logs from an edge agent; 202 once the broker has them all."""
        if len(batch.predictions) > rt.settings.max_records_per_request:
            raise InvalidInput(
                f"at most {rt.settings.max_records_per_request} prediction logs per request",
                field="predictions",
            )
        try:
            logs = accept_predictions(batch.predictions)
        except BatchInvalid:
            PREDICTIONS_REJECTED.inc()
            raise
        parent = child_of(traceparent)
        bind_trace(trace_id_of(parent))
        await publish_predictions(rt.producer, logs, traceparent=parent)
        PREDICTIONS_ACCEPTED.inc(len(logs))
        log.info("prediction_logs_accepted", count=len(logs), site=logs[0].site)
        return {"accepted": len(logs), "trace_id": trace_id_of(parent)}

    return app


def _describe(name: str, project: Project) -> dict[str, Any]:
    dataset = project.datasets[name]
    return {
        "name": name,
        "entity": dataset.entity,
        "time": dataset.time,
        "fields": dataset.fields,
        "labels": dataset.labels,
    }


def bootstrap(settings: Settings, *, producer: Producer | None = None) -> FastAPI:
    runtime = Runtime(
        settings=settings,
        project=load_project(settings.project),
        producer=producer or Producer(settings.broker, source="ingest"),
    )
    return create_app(runtime)


def main() -> None:
    settings = Settings()
    configure_logging("ingest", settings.log_level)
    uvicorn.run(
        bootstrap(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
