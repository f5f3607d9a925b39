"""The faust app: raw → validate (invalid → dlq) → point-in-time windows (a faust
table) → offline and online store → ``features`` topic; a leader timer runs the
retraining check. The HTTP app is served inside the same event loop."""

from __future__ import annotations

import asyncio
import base64
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import faust
import mode
import structlog
from fastapi import FastAPI
from faust.streams import _current_event
from millrace_common.contracts import DLQ, FEATURES, RAW, DeadLetter
from millrace_common.logs import bind_trace
from millrace_common.service import EmbeddedServer, server_config
from millrace_common.tracing import trace_id_of

from millrace_features.adapters.faust_app import StreamApp
from millrace_features.metrics import REJECTS, REPLAYS, ROWS
from millrace_features.pipeline import ComputedRow, RawMessage, Rejected, decode, rows_for
from millrace_features.retraining import check_models
from millrace_features.runtime import Runtime

log = structlog.get_logger(__name__)


def build_stream(runtime: Runtime, *, http: FastAPI) -> faust.App:
    """The faust app over ``runtime``, serving ``http`` on the service's port."""
    settings = runtime.settings
    app = StreamApp(
        settings.app_id,
        broker=f"kafka://{settings.broker}",
        store="memory://",
        datadir=settings.data_dir,
        broker_session_timeout=settings.session_timeout_seconds,
        topic_partitions=settings.partitions,
        web_enabled=False,  # the HTTP app is the service scaffold's, below
    )
    runtime.stream = app
    raw = app.topic(
        RAW, key_serializer="raw", value_serializer="raw", partitions=settings.partitions
    )
    features_topic = app.topic(FEATURES, key_serializer="raw", value_serializer="raw")
    dlq = app.topic(DLQ, key_serializer="raw", value_serializer="raw")
    # str keys both ways: a recovered changelog must give back the keys the agent uses
    windows = app.Table("windows", default=None, partitions=settings.partitions, key_type=str)
    _wire_agent(app, runtime, raw=raw, features_topic=features_topic, dlq=dlq, windows=windows)
    _wire_retraining(app, runtime)
    _wire_http(app, runtime, http)
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
            log.info("feature_rows_written", events=len(events), rows=len(computed), new=new)


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
        log.debug(
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
    @app.timer(interval=runtime.settings.retrain_check_seconds, on_leader=True)
    async def maybe_retrain() -> None:
        await check_models(runtime)


def _wire_http(app: faust.App, runtime: Runtime, http: FastAPI) -> None:
    # mode calls receivers as (sender, assigned, signal=...): keep the positional slot
    async def _assigned(_app: Any, _assigned_tps: Any = None, **_kwargs: Any) -> None:
        runtime.assigned = True

    app.on_partitions_assigned.connect(_assigned)  # type: ignore[arg-type]  # mode typing
    app.add_dependency(HttpServer(EmbeddedServer(server_config(http, runtime.settings))))


class HttpServer(mode.Service):
    """The scaffold's HTTP app as a service of the faust app, started before its
    consumer (so /healthz answers and /readyz says what it waits for while partitions
    are assigned and tables recover) and stopped with it; faust owns the signals."""

    def __init__(self, server: EmbeddedServer) -> None:
        super().__init__()
        self._server = server
        self._serving: asyncio.Future[None] | None = None

    async def on_start(self) -> None:
        self._serving = asyncio.ensure_future(self._server.serve())

    async def on_stop(self) -> None:
        self._server.should_exit = True
        if self._serving is not None:
            await asyncio.wait({self._serving}, timeout=10.0)
