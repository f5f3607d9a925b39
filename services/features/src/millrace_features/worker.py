"""features: the faust worker (entrypoint, wiring only).

raw → validate (invalid → dlq) → point-in-time windows (a faust table) → offline and
online store → ``features`` topic; a leader timer decides when to retrain and writes
the snapshot and its train request (relayed from the outbox).
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import structlog
from faust.streams import _current_event
from faust.web import Request, Response, View
from millrace_common.contracts import DLQ, FEATURES, RAW, DeadLetter
from millrace_common.db import make_engine, migrate, session_factory
from millrace_common.errors import MillraceError
from millrace_common.logs import bind_trace, configure_logging
from millrace_common.messaging import Producer, ensure_topics, wait_for_broker
from millrace_common.objectstore import ObjectStore, open_store
from millrace_common.outbox import OutboxRelay
from millrace_common.project import Project, load_project
from millrace_common.tracing import trace_id_of
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

from millrace_features.adapters.faust_app import StreamApp
from millrace_features.adapters.snapshots import (
    labelled_count,
    last_snapshot,
    snapshot_and_request,
)
from millrace_features.adapters.store import FeatureStore
from millrace_features.config import Settings
from millrace_features.monitoring import DriftGate, drift_answer, measure_drift, verdict
from millrace_features.on_demand import accepted, error_answer, parse_ask, request_training
from millrace_features.pipeline import ComputedRow, RawMessage, Rejected, decode, rows_for
from millrace_features.retraining import retrain_reason
from millrace_features.tables import outbox

log = structlog.get_logger(__name__)
ROWS = Counter("millrace_features_rows_total", "Offline feature rows written", ["feature_set"])
REPLAYS = Counter("millrace_features_replayed_total", "Events seen again (no effect)")
REJECTS = Counter("millrace_features_rejected_total", "Raw messages sent to the dlq")
SNAPSHOTS = Counter("millrace_features_snapshots_total", "Snapshots written", ["model"])
DRIFT_PSI = Gauge(
    "millrace_features_drift_psi",
    "Population Stability Index of a feature's recent window against the latest snapshot",
    ["model", "feature"],
)


class Runtime:
    def __init__(self, *, settings: Settings, project: Project, store: ObjectStore) -> None:
        self.settings = settings
        self.project = project
        self.store = store
        self.engine = make_engine(settings.database_url)
        self.factory = session_factory(self.engine)
        self.features = FeatureStore(self.factory)
        self.assigned = False
        self.relay: OutboxRelay | None = None
        self.drift_gate = DriftGate()
        self.drift_checked = float("-inf")  # monotonic time of the last drift measurement


def build_app(runtime: Runtime) -> faust.App:
    settings = runtime.settings
    app = StreamApp(
        settings.app_id,
        broker=f"kafka://{settings.broker}",
        store="memory://",
        datadir=settings.data_dir,
        broker_session_timeout=settings.session_timeout_seconds,
        topic_partitions=settings.partitions,
        web_port=settings.port,
        web_bind=settings.host,
        web_host=settings.host,
    )
    raw = app.topic(
        RAW, key_serializer="raw", value_serializer="raw", partitions=settings.partitions
    )
    features_topic = app.topic(FEATURES, key_serializer="raw", value_serializer="raw")
    dlq = app.topic(DLQ, key_serializer="raw", value_serializer="raw")
    # str keys both ways: a recovered changelog must give back the keys the agent uses
    windows = app.Table("windows", default=None, partitions=settings.partitions, key_type=str)
    _wire_agent(app, runtime, raw=raw, features_topic=features_topic, dlq=dlq, windows=windows)
    _wire_retraining(app, runtime)
    _wire_web(app, runtime)
    return app


def _wire_agent(
    app: faust.App, runtime: Runtime, *, raw: Any, features_topic: Any, dlq: Any, windows: Any
) -> None:
    settings = runtime.settings

    @app.agent(raw)
    async def compute_features(stream: Any) -> None:
        async for events in stream.take_events(
            settings.batch_size, within=settings.batch_within_seconds
        ):
            computed: list[ComputedRow] = []
            for event in events:
                with _current(event):
                    computed.extend(await _rows_or_dlq(runtime, event, windows, dlq))
            new = await asyncio.to_thread(
                runtime.features.write, [(c.row, c.trace_id) for c in computed]
            )
            _count(computed, new)
            for item in computed:
                await features_topic.send(
                    key=item.row.entity_id.encode(), value=item.row.model_dump_json().encode()
                )


async def _rows_or_dlq(runtime: Runtime, event: Any, windows: Any, dlq: Any) -> list[ComputedRow]:
    message = _message(event)
    bind_trace(message.trace_id)
    try:
        record = decode(runtime.project, message)
    except Rejected as exc:
        await _dead_letter(dlq, event, message, reason=str(exc))
        return []
    rows = rows_for(runtime.project, record, message, windows)
    for row in rows:
        log.info(
            "feature_row_computed",
            feature_set=row.row.feature_set,
            entity_id=row.row.entity_id,
            event_id=row.row.event_id,
        )
    return rows


@contextmanager
def _current(event: Any) -> Iterator[None]:
    """Make ``event`` faust's current event in this task only.

    Table writes go to the changelog partition of the current event, and take_events
    does not set it per event. The context variable is task-local, so this cannot
    disturb the stream's own buffering task (``Stream._set_current_event`` would).
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def _message(event: Any) -> RawMessage:
    headers = event.message.headers or {}
    items = headers.items() if isinstance(headers, dict) else headers
    traceparent = next(
        (v.decode(errors="replace") for k, v in items if k == "traceparent" and v), None
    )
    return RawMessage(
        value=event.message.value,
        topic=event.message.topic,
        partition=event.message.partition,
        offset=event.message.offset,
        trace_id=trace_id_of(traceparent),
    )


async def _dead_letter(dlq: Any, event: Any, message: RawMessage, *, reason: str) -> None:
    letter = DeadLetter(
        original=base64.b64encode(message.value or b"").decode(),
        original_key=event.message.key.decode(errors="replace") if event.message.key else None,
        error=reason,
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        consumer="features",
        at=datetime.now(UTC),
    )
    await dlq.send(key=event.message.key, value=letter.model_dump_json().encode())
    REJECTS.inc()
    log.warning("dead_lettered", reason=reason, partition=message.partition, offset=message.offset)


def _count(computed: list[ComputedRow], new: int) -> None:
    for item in computed:
        ROWS.labels(item.row.feature_set).inc()
    if len(computed) > new:
        REPLAYS.inc(len(computed) - new)


def _wire_retraining(app: faust.App, runtime: Runtime) -> None:
    settings = runtime.settings
    producer = Producer(settings.broker, source="features")
    relay = OutboxRelay(factory=runtime.factory, table=outbox, producer=producer, source="features")
    runtime.relay = relay

    @app.task
    async def relay_outbox() -> None:
        await producer.start()
        try:
            await relay.run()
        finally:
            await producer.stop()

    started_at = datetime.now(UTC)

    @app.timer(interval=settings.retrain_check_seconds, on_leader=True)
    async def maybe_retrain() -> None:
        drift_due = time.monotonic() - runtime.drift_checked >= settings.drift_check_seconds
        if drift_due:
            runtime.drift_checked = time.monotonic()
        for model in runtime.project.models.values():
            reason = await asyncio.to_thread(_retrain_due, runtime, model.name, started_at)
            if drift_due:
                drifted = await asyncio.to_thread(_drift_due, runtime, model.name)
                reason = reason or drifted
            if reason is not None:
                await asyncio.to_thread(_snapshot, runtime, model.name, reason)
                relay.wake()


def _retrain_due(runtime: Runtime, model_name: str, started_at: datetime) -> str | None:
    model = runtime.project.model(model_name)
    with runtime.factory() as session:
        return retrain_reason(
            model.retrain,
            labelled=labelled_count(session, model.feature_set),
            last=last_snapshot(session, model.name),
            now=datetime.now(UTC),
            started_at=started_at,
        )


def _drift_due(runtime: Runtime, model_name: str) -> str | None:
    """Measure the model's drift (gauge, log) and say whether its drift policy fires."""
    try:
        measured = measure_drift(
            factory=runtime.factory,
            project=runtime.project,
            model=model_name,
            max_rows=runtime.settings.drift_max_rows,
        )
    except MillraceError:  # no snapshot (with a reference) yet: nothing to compare with
        return None
    for feature, value in measured.psi.items():
        DRIFT_PSI.labels(model_name, feature).set(value)
    reason = verdict(measured, runtime.drift_gate)
    runtime.drift_gate.observe(measured)
    log.info(
        "drift_measured",
        model=model_name,
        reference=measured.reference.snapshot_id,
        rows=measured.rows,
        top={name: round(value, 3) for name, value in list(measured.psi.items())[:3]},
        fires=reason is not None,
    )
    return reason


def _snapshot(runtime: Runtime, model_name: str, reason: str) -> None:
    model = runtime.project.model(model_name)
    request = snapshot_and_request(
        factory=runtime.factory,
        store=runtime.store,
        feature_set=runtime.project.feature_set(model.feature_set),
        model=model,
        reason=reason,
    )
    SNAPSHOTS.labels(model.name).inc()
    log.info(
        "train_requested",
        model=model.name,
        request_id=request.request_id,
        snapshot=request.snapshot.uri,
        rows=request.snapshot.rows,
        reason=reason,
    )


def _wire_web(app: faust.App, runtime: Runtime) -> None:
    settings = runtime.settings

    # mode calls receivers as (sender, assigned, signal=...): keep the positional slot
    async def _assigned(_app: Any, _assigned_tps: Any = None, **_kwargs: Any) -> None:
        runtime.assigned = True

    app.on_partitions_assigned.connect(_assigned)  # type: ignore[arg-type]  # mode typing

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            ready = runtime.assigned and not app.rebalancing
            return self.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/v1/models/{model}/train-requests")
    class TrainRequests(View):
        async def post(self, request: Request, model: str) -> Response:
            """On demand: a fresh snapshot now and its train request (202)."""
            try:
                ask = parse_ask(await request.read())
                queued = await asyncio.to_thread(
                    request_training,
                    factory=runtime.factory,
                    store=runtime.store,
                    project=runtime.project,
                    model=model,
                    ask=ask,
                )
            except MillraceError as exc:
                body, status = error_answer(exc)
                return self.json(body, status=status)
            SNAPSHOTS.labels(model).inc()
            if runtime.relay is not None:
                runtime.relay.wake()
            return self.json(accepted(queued), status=202)

    @app.page("/v1/models/{model}/drift")
    class Drift(View):
        async def get(self, request: Request, model: str) -> Response:
            """The PSI per feature of the model's recent window against its latest
            snapshot, and whether the drift policy would fire (404, 409 no snapshot)."""
            try:
                measured = await asyncio.to_thread(
                    measure_drift,
                    factory=runtime.factory,
                    project=runtime.project,
                    model=model,
                    max_rows=settings.drift_max_rows,
                )
            except MillraceError as exc:
                body, status = error_answer(exc)
                return self.json(body, status=status)
            return self.json(drift_answer(measured, verdict(measured, runtime.drift_gate)))

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # aiohttp refuses a charset inside content_type; Prometheus accepts it without
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def bootstrap(settings: Settings, *, store: ObjectStore | None = None) -> faust.App:
    runtime = Runtime(
        settings=settings,
        project=load_project(settings.project),
        store=store or open_store(settings.object_store),
    )
    migrate(runtime.engine, schema="features", versions=Path(__file__).parent / "migrations")
    asyncio.run(_prepare_broker(settings))
    return build_app(runtime)


async def _prepare_broker(settings: Settings) -> None:
    await wait_for_broker(settings.broker)
    await ensure_topics(settings.broker, [RAW, FEATURES, DLQ], partitions=settings.partitions)


def main() -> None:
    settings = Settings()
    configure_logging("features", settings.log_level)
    app = bootstrap(settings)
    worker = faust.Worker(app, loglevel="WARNING", redirect_stdouts=False, override_logging=False)
    sys.exit(worker.execute_from_commandline())


if __name__ == "__main__":
    main()
