"""The edge agent's entrypoint: ``millrace-edge-agent run --site SITE [--config FILE]``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from millrace_common.dataplane import DataPlane
from millrace_common.errors import InvalidInput
from millrace_common.http import health_router, include_flat, install_error_handlers, telemetry
from millrace_common.logs import configure_logging
from millrace_common.objectstore import ObjectStore, open_store
from millrace_common.predict_api import predict_router
from millrace_common.project import Project
from millrace_common.scoring import ModelSlots
from millrace_common.signing import Verifier
from pydantic import BaseModel, Field

from millrace_edge_agent.adapters.cache import ModelCache, instance_id
from millrace_edge_agent.adapters.centre import (
    HeartbeatSink,
    IngestSink,
    PredictionLogSink,
    RecordSink,
    RegistryHeartbeats,
)
from millrace_edge_agent.adapters.kafka import ModelEvents, group_id_of
from millrace_edge_agent.adapters.mqtt import BrokerAddress, MqttRecords
from millrace_edge_agent.adapters.queue import Queues
from millrace_edge_agent.adapters.queue.prediction_logs import PredictionLogQueue
from millrace_edge_agent.adapters.queue.records import QueueFull
from millrace_edge_agent.aggregate_forwarder import AggregatingForwarder
from millrace_edge_agent.config import Settings, load_settings
from millrace_edge_agent.forwarder import Forwarder, PredictionLogForwarder
from millrace_edge_agent.heartbeat import Heartbeats
from millrace_edge_agent.intake import RecordsInvalid, open_project
from millrace_edge_agent.mqtt_intake import MessageIntake, TopicPattern
from millrace_edge_agent.prediction_logs import PredictionLogBuffer
from millrace_edge_agent.probation import ProbationWatch
from millrace_edge_agent.runtime import EdgeRuntime
from millrace_edge_agent.sync import Syncer


class RecordBatch(BaseModel):
    """The body ingest takes: ``{"records": [...]}``."""

    records: list[Any] = Field(min_length=1)


NO_ONLINE_STORE = (
    "the edge agent has no online feature store, so it cannot look up "
    "entity_ids: send 'instances' with the features"
)


def bootstrap(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    sink: RecordSink | None = None,
    heartbeat_sink: HeartbeatSink | None = None,
    prediction_sink: PredictionLogSink | None = None,
) -> EdgeRuntime:
    # no bucket check here: the agent must start, and serve from disk, with the store down
    store = store or open_store(settings.object_store, create_bucket=False)
    slots = ModelSlots()
    verifier = (
        Verifier.from_pem_file(settings.trusted_key_file) if settings.trusted_key_file else None
    )
    syncer = Syncer(
        site=settings.site,
        store=store,
        cache=ModelCache(settings.cache_path),
        slots=slots,
        verifier=verifier,
    )
    syncer.probation = ProbationWatch(
        on_rollback=syncer.rollback,
        window=settings.health_window,
        window_seconds=settings.health_window_seconds,
        max_error_rate=settings.health_max_error_rate,
    )
    queues = Queues.open(
        settings.queue_path,
        max_rows=settings.queue_max_rows,
        max_age=settings.queue_max_age,
        policy=settings.queue_policy,
        max_prediction_logs=settings.prediction_log_max_rows,
    )
    runtime = EdgeRuntime(
        settings=settings,
        slots=slots,
        syncer=syncer,
        queues=queues,
        project=open_project(settings.project),
        instance_id=settings.instance_id or instance_id(settings.cache_path),
    )
    if sink is None and settings.forward_url:
        sink = IngestSink(settings.forward_url)
        runtime.closers.append(sink)
        prediction_sink = prediction_sink or sink
    if sink is not None:
        runtime.forwarder = make_forwarder(
            settings, queues=queues, sink=sink, project=runtime.project
        )
    make_prediction_logs(
        settings, runtime=runtime, queue=queues.prediction_logs, sink=prediction_sink
    )
    if settings.broker and settings.follow_kafka:
        runtime.events = ModelEvents(
            bootstrap=settings.broker,
            site=settings.site,
            instance=runtime.instance_id,
            on_event=runtime.model_event,
        )
    if settings.mqtt_url:
        runtime.mqtt_intake, runtime.mqtt = make_mqtt(settings, runtime=runtime, queues=queues)
    if heartbeat_sink is None and settings.registry_url:
        heartbeat_sink = RegistryHeartbeats(settings.registry_url)
        runtime.closers.append(heartbeat_sink)
    if heartbeat_sink is not None:
        runtime.heartbeats = Heartbeats(
            site=settings.site,
            queue=queues.heartbeats,
            sink=heartbeat_sink,
            state=runtime.heartbeat,
            interval=settings.heartbeat_interval,
        )
    return runtime


def make_mqtt(
    settings: Settings, *, runtime: EdgeRuntime, queues: Queues
) -> tuple[MessageIntake, MqttRecords]:
    """The MQTT intake, its client id the agent's own, like its Kafka group."""
    pattern = TopicPattern.parse(settings.mqtt_topic, site=settings.site)
    intake = MessageIntake(
        site=settings.site,
        pattern=pattern,
        project=runtime.project,
        store=runtime.store,
        dead_letters=queues.dead_letters,
        max_records=min(settings.max_records_per_request, settings.queue_max_rows),
    )
    client = MqttRecords(
        address=BrokerAddress.parse(settings.mqtt_url),
        client_id=group_id_of(settings.site, runtime.instance_id),
        topic_filter=pattern.filter,
        on_messages=intake.take,
    )
    return intake, client


def make_prediction_logs(
    settings: Settings,
    *,
    runtime: EdgeRuntime,
    queue: PredictionLogQueue,
    sink: PredictionLogSink | None,
) -> None:
    """Prediction logs to disk, and from there to the centre when it is configured."""
    if settings.prediction_sample_rate == 0:
        return
    if sink is not None:
        runtime.prediction_forwarder = PredictionLogForwarder(
            queue=queue,
            sink=sink,
            batch_size=settings.forward_batch,
            retry_cap=settings.forward_retry_cap,
        )
    forwarder = runtime.prediction_forwarder
    runtime.prediction_logs = PredictionLogBuffer(
        queue=queue,
        site=settings.site,
        max_buffer=settings.prediction_log_buffer,
        on_stored=forwarder.wakeup.set if forwarder is not None else None,
    )


def make_forwarder(
    settings: Settings, *, queues: Queues, sink: RecordSink, project: Project | None
) -> Forwarder:
    if settings.forward_mode == "raw":
        return Forwarder(
            queue=queues.records,
            sink=sink,
            batch_size=settings.forward_batch,
            retry_cap=settings.forward_retry_cap,
        )
    if project is None:
        raise InvalidInput(
            "forward_mode aggregate needs the project folder, to know the "
            f"datasets' fields (MILLRACE_PROJECT={settings.project!r} has no "
            "millrace.yaml)",
            field="forward_mode",
        )
    return AggregatingForwarder(
        queue=queues.records,
        windows=queues.windows,
        sink=sink,
        batch_size=settings.forward_batch,
        retry_cap=settings.forward_retry_cap,
        project=project,
        site=settings.site,
        width=settings.aggregate_window_seconds,
        grace=settings.aggregate_grace_seconds,
    )


def create_app(runtime: EdgeRuntime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="millrace-edge-agent", lifespan=lifespan, telemetry=telemetry())
    install_error_handlers(app)
    guard = runtime.syncer.probation
    logs = runtime.prediction_logs
    plane = DataPlane(
        slots=runtime.slots,
        sink=logs.offer if logs is not None else None,
        log_sample_rate=runtime.settings.prediction_sample_rate,
    )
    if guard is not None:
        plane.run, plane.recover = guard.run, guard.recover
    # routes are matched in order, each a cost on every request: the scoring routes first
    include_flat(app, predict_router(runtime.slots, no_lookup_message=NO_ONLINE_STORE, plane=plane))
    app.include_router(health_router(runtime.ready))

    @app.exception_handler(RecordsInvalid)
    async def _records_invalid(_request: Request, exc: RecordsInvalid) -> JSONResponse:
        errors = [{"field": f, "message": m} for f, m in exc.errors]
        return JSONResponse(
            {"error": exc.code, "message": exc.message, "field": exc.field, "errors": errors},
            status_code=422,
        )

    @app.exception_handler(QueueFull)
    async def _queue_full(_request: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse(
            {"error": "queue_full", "message": str(exc), "refused": exc.refused}, status_code=507
        )

    @app.post("/v1/datasets/{name}/records", status_code=202)
    async def post_records(name: str, batch: RecordBatch) -> dict[str, Any]:
        if len(batch.records) > runtime.settings.max_records_per_request:
            raise InvalidInput(
                f"at most {runtime.settings.max_records_per_request} records per request",
                field="records",
            )
        event_ids = await runtime.enqueue(dataset=name, records=batch.records)
        return {
            "accepted": len(event_ids),
            "event_ids": event_ids,
            "queue_depth": runtime.queues.records.depth() if runtime.queues else 0,
        }

    @app.get("/v1/dead-letters")
    async def dead_letters(limit: int = 100) -> dict[str, Any]:
        """Messages no record could be taken from, newest first, with the reason."""
        letters = (
            runtime.queues.dead_letters.newest(min(max(limit, 1), 1000)) if runtime.queues else []
        )
        return {
            "dead_letters": [
                {
                    "received_at": datetime.fromtimestamp(d.received_at, UTC).isoformat(),
                    "source": d.source,
                    "topic": d.topic,
                    "reason": d.reason,
                    "payload": d.payload.decode("utf-8", errors="replace"),
                }
                for d in letters
            ]
        }

    @app.get("/v1/status")
    async def status() -> dict[str, Any]:
        return runtime.describe()

    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="millrace-edge-agent", description="Keep a site's models and score locally."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the agent for one site")
    run.add_argument("--site", help="the site id (or MILLRACE_EDGE_AGENT_SITE)")
    run.add_argument("--config", help="a YAML/JSON file of settings")
    run.add_argument("--port", type=int, help="HTTP port (default 8060)")
    run.add_argument("--cache-dir", help="default ./.millrace/edge/<site>")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        settings = load_settings(
            config_file=args.config,
            overrides={"site": args.site, "port": args.port, "cache_dir": args.cache_dir},
        )
        runtime = bootstrap(settings)
    except InvalidInput as exc:
        raise SystemExit(f"millrace-edge-agent: {exc.message}") from None
    configure_logging("edge-agent", settings.log_level)
    # the minio client's retries would log five lines per failed poll; sync_failed says it once
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # model_events_unavailable says it
    logging.getLogger("millrace_edge_agent.mqtt.paho").setLevel(
        logging.CRITICAL
    )  # mqtt_unavailable
    uvicorn.run(
        create_app(runtime),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
    )
