"""The features worker: a faust app whose services are the raw consumer, the HTTP app
and the leader's retraining timer.

raw is read in batches by a plain aiokafka consumer in the group ``app_id`` (faust's
per-event stream tops out at 6-11k events/s here, under a tenth of the broker's
rate): validate (invalid → dlq), compute the point-in-time rows with the feature
engine, write offline and online rows in one transaction, publish them to
``features``, then commit the batch's offsets. Windows live in the engine's memory and
start again from the offline store (the rows keep their inputs), so a restart, a
rebalance or a lost broker resumes them exactly; nothing is replayed from a changelog.

A kill -9 between the database commit and the offset commit replays the batch: every
effect is keyed by event id (rows inserted once, online rows only move forward in event
time, a window takes an event once).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import random
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
import mode
import orjson
import sqlalchemy as sa
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from fastapi import FastAPI
from millrace_common.contracts import DLQ, EVENT_TYPES, FEATURES, RAW, DeadLetter
from millrace_common.feature_engine import Event, FeatureEngine, Row
from millrace_common.kafka_security import client_options, faust_credentials
from millrace_common.messaging import Envelope, Message, header
from millrace_common.project import Project
from millrace_common.service import EmbeddedServer, server_config
from millrace_common.tracing import new_traceparent, trace_id_of

from millrace_features.adapters.faust_app import StreamApp
from millrace_features.metrics import (
    BATCH_FAILURES,
    BATCH_SECONDS,
    RAW_LAG,
    REJECTS,
    REPLAYS,
    ROWS,
)
from millrace_features.pipeline import RawMessage, Rejected, event_of
from millrace_features.retraining import check_models
from millrace_features.runtime import Runtime

log = structlog.get_logger(__name__)


def build_stream(runtime: Runtime, *, http: FastAPI) -> faust.App:
    """The faust app over ``runtime``, serving ``http`` on the service's port."""
    settings = runtime.settings
    app = StreamApp(
        f"{settings.app_id}-control",  # faust's own group: leader election for the timer
        broker=f"kafka://{settings.broker}",
        broker_credentials=faust_credentials(),
        store="memory://",
        datadir=settings.data_dir,
        broker_session_timeout=settings.session_timeout_seconds,
        web_enabled=False,  # the HTTP app is the service scaffold's, below
    )
    runtime.stream = app
    app.add_dependency(HttpServer(EmbeddedServer(server_config(http, settings))))
    app.add_dependency(RawConsumer(runtime))

    @app.timer(interval=settings.retrain_check_seconds, on_leader=True)
    async def maybe_retrain() -> None:
        try:
            await check_models(runtime)
        except Exception as exc:  # noqa: BLE001 - a timer that raises stops faust's app
            log.warning("retrain_check_failed", error=repr(exc)[:300])

    return app


T = TypeVar("T")


@dataclass
class Batch:
    """A batch of raw records turned into rows, waiting to be stored and published."""

    records: int
    rows: list[Row]
    rejected: list[tuple[ConsumerRecord, str]]
    offsets: dict[TopicPartition, int]
    started: float = field(default_factory=time.perf_counter)


class RawConsumer(mode.Service):
    """raw → rows → store → ``features``, a batch at a time, offsets committed last."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime
        self.engine = FeatureEngine(
            runtime.project, source=runtime.features, max_windows=runtime.settings.max_windows
        )
        self._batch = asyncio.Lock()  # a rebalance waits for the batch being computed
        runtime.on_project.append(self.use_project)
        # the last batch handed on: its write, and its whole finish (write, publish, commit)
        self._writing: asyncio.Future[int] | None = None
        self._pending: asyncio.Future[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Future[None] | None = None

    async def on_start(self) -> None:
        _collect_less()
        self._task = asyncio.ensure_future(self._run())

    async def on_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=10.0)

    async def _run(self) -> None:
        """Consume until stopped; a broker failure restarts the consumer (uncommitted
        batches come back, idempotently), never the worker."""
        await self.runtime.producer_started.wait()
        while True:
            try:
                await self._consume()
            except KafkaError as exc:
                self.runtime.assigned = False
                log.warning("raw_consumer_failed_restarting", error=repr(exc))
                await asyncio.sleep(2.0)
            except Exception as exc:
                self.runtime.assigned = False
                log.error("raw_consumer_crashed_restarting", error=repr(exc), exc_info=exc)
                await asyncio.sleep(5.0)

    async def _consume(self) -> None:
        settings = self.runtime.settings
        consumer = self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.broker,
            **client_options(),
            group_id=settings.app_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(settings.session_timeout_seconds * 1000),
            heartbeat_interval_ms=1000,
            # a batch may wait out a database outage (retried): not a reason to leave
            max_poll_interval_ms=3_600_000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # a fetch returns once 256 KiB have arrived or 25 ms have passed: a lone
            # record is read within ~25 ms, and under load batches stay large enough
            # that their fixed costs (round trips to the store and the broker) are shared
            fetch_min_bytes=256 * 1024,
            fetch_max_wait_ms=25,
        )
        consumer.subscribe([RAW], listener=_Rebalance(self))
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=settings.batch_size)
                if not batches:
                    await self._settle()
                    continue
                async with self._batch:
                    batch = await self._computed(batches)
                _report_lag(consumer, batch.offsets)
                await self._hand_on(consumer, batch)
        finally:
            await self._settle()
            await consumer.stop()

    async def _hand_on(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        """Store, publish and commit ``batch`` behind the batches before it: three
        stages at once, each in batch order. This batch was computed while the previous
        one was written and the one before it published; it is written once the
        previous write is done (one transaction at a time: two could lock one online
        row in opposite orders), published and committed once the previous batch is."""
        if self._writing is not None:
            await asyncio.wait({self._writing})
        previous = self._pending
        if previous is not None and previous.done():
            await self._settle()  # a failed publish or commit ends the consumer here
            previous = None
        self._writing = asyncio.ensure_future(
            self._retrying(self.runtime.features.write, batch.rows)
        )
        self._pending = asyncio.ensure_future(
            self._finish(consumer, batch, self._writing, previous)
        )

    async def _settle(self) -> None:
        """Wait for every batch handed on to be stored, published and committed."""
        pending = self._pending
        if pending is not None:
            try:
                await pending
            finally:
                if self._pending is pending:
                    self._pending = None

    async def _computed(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> Batch:
        records = [r for tp in sorted(batches) for r in batches[tp]]
        offsets = {tp: rs[-1].offset + 1 for tp, rs in batches.items()}
        rows, rejected = await self._retrying(self._compute, records)
        return Batch(records=len(records), rows=rows, rejected=rejected, offsets=offsets)

    async def _finish(
        self,
        consumer: AIOKafkaConsumer,
        batch: Batch,
        written: asyncio.Future[int],
        previous: asyncio.Future[None] | None,
    ) -> None:
        """Stored, then published, then committed: a batch's offsets move only after its
        effects, and after the batch before it (whose failure is this one's)."""
        new = await written
        if previous is not None:
            await previous
        await self._publish(batch.rows, batch.rejected)
        try:
            await consumer.commit(batch.offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # the partitions moved on meanwhile: their new owner replays the batch, a no-op
            log.warning("batch_commit_refused", error=repr(exc), records=batch.records)
        _count(batch.rows, new)
        BATCH_SECONDS.observe(time.perf_counter() - batch.started)
        log.info(
            "batch_done",
            records=batch.records,
            rows=len(batch.rows),
            new=new,
            dlq=len(batch.rejected),
            **_traces(batch.rows),
        )

    async def _retrying(self, work: Callable[[Any], T], argument: Any) -> T:
        """``work(argument)`` on a worker thread, retried with backoff while the
        database is away (the batch waits, nothing is skipped; readiness says so)."""
        attempt = 0
        while True:
            try:
                result = await asyncio.to_thread(work, argument)
            except Exception as exc:  # any failure: the batch is retried, never skipped
                attempt += 1
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
                delay = min(10.0, 0.2 * 2**attempt) * random.uniform(0.8, 1.2)
                if isinstance(exc, sa.exc.DBAPIError | sa.exc.TimeoutError):
                    self.runtime.database_error = error
                    BATCH_FAILURES.labels("store").inc()
                    log.warning(
                        "batch_store_failed_retrying",
                        error=error,
                        attempt=attempt,
                        retry_in=round(delay, 1),
                    )
                else:  # a fault of the worker's own: red and loud, with its traceback
                    self.runtime.batch_error = error
                    BATCH_FAILURES.labels("worker").inc()
                    log.error("batch_failed_retrying", attempt=attempt, exc_info=exc)
                await asyncio.sleep(delay)
                continue
            if self.runtime.database_error is not None or self.runtime.batch_error is not None:
                log.info("batch_recovered", attempts=attempt)
                self.runtime.database_error = self.runtime.batch_error = None
            return result

    def _compute(
        self, records: Sequence[ConsumerRecord]
    ) -> tuple[list[Row], list[tuple[ConsumerRecord, str]]]:
        events: list[Event] = []
        rejected: list[tuple[ConsumerRecord, str]] = []
        project = self.runtime.project
        for record in records:
            try:
                events.append(event_of(project, _message(record)))
            except Rejected as exc:
                rejected.append((record, str(exc)))
        return self.engine.rows(events), rejected

    async def _publish(self, rows: list[Row], rejected: list[tuple[ConsumerRecord, str]]) -> None:
        producer = self.runtime.producer
        # one span per trace and batch: the batch is the unit of work that made its rows
        spans = {t: new_traceparent(t).encode() for t in {row.trace_id for row in rows}}
        await producer.publish(FEATURES, (_feature_message(r, spans[r.trace_id]) for r in rows))
        if rejected:
            await producer.send_many(DLQ, [_dead_letter(r, reason) for r, reason in rejected])
            REJECTS.inc(len(rejected))
            for record, reason in rejected:
                log.warning(
                    "dead_lettered", reason=reason, partition=record.partition, offset=record.offset
                )

    async def use_project(self, project: Project) -> None:
        """Between two batches: the batches handed on finish with the old project, the
        next is computed with the new one, its windows loaded again from the store."""
        async with self._batch:
            with suppress(Exception):  # its failure is the consume loop's to handle
                await self._settle()
            self.engine = FeatureEngine(
                project, source=self.runtime.features, max_windows=self.runtime.settings.max_windows
            )
            self.runtime.project = project

    async def revoked(self) -> None:
        RAW_LAG.clear()  # the partitions' new owners report them
        async with self._batch:
            with suppress(Exception):  # its failure is the consume loop's to handle
                await self._settle()
            self.engine.forget()

    def assigned(self, partitions: set[TopicPartition]) -> None:
        self.engine.forget()
        self.runtime.assigned = bool(partitions)
        log.info("partitions_assigned", partitions=sorted(tp.partition for tp in partitions))


def _collect_less() -> None:
    """Fewer cyclic garbage collections: a batch allocates tens of thousands of objects
    (records, rows, their dicts), which at Python's default threshold (700) run a
    collection every few dozen records, each also scanning the windows kept in memory.
    What start-up built is frozen out of them. Measured on the streaming bench:
    ~30% more rows/s (py-spy: the collections were a fifth of the stream's time)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: RawConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._consumer.revoked()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._consumer.assigned(assigned)


_TYPE = EVENT_TYPES[FEATURES].encode()
_SOURCE = b"features"


def _feature_message(row: Row, traceparent: bytes) -> Message:
    """The row on ``features``, with the envelope headers (built by hand: this runs for
    every row; orjson writes the time, in the form the row's JSON has it)."""
    return (
        row.entity_id.encode(),
        row.to_json(),
        [
            ("ce_id", f"{row.feature_set}:{row.event_id}".encode()),
            ("ce_type", _TYPE),
            ("ce_source", _SOURCE),
            ("ce_time", orjson.dumps(row.event_time, option=orjson.OPT_UTC_Z)[1:-1]),
            ("traceparent", traceparent),
        ],
    )


def _traces(rows: list[Row], *, most: int = 20) -> dict[str, Any]:
    """The batch's trace ids for its log line, so a trace can be followed into the
    stream: few per batch (a REST post carries one for all its records)."""
    traces = list(dict.fromkeys(r.trace_id for r in rows if r.trace_id))
    if len(traces) > most:
        return {"trace_ids": traces[:most], "more_trace_ids": len(traces) - most}
    return {"trace_ids": traces} if traces else {}


def _report_lag(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    for tp, next_offset in offsets.items():
        end = consumer.highwater(tp)
        if end is not None:
            RAW_LAG.labels(str(tp.partition)).set(max(0, end - next_offset))


def _message(record: ConsumerRecord) -> RawMessage:
    return RawMessage(
        value=record.value,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        trace_id=trace_id_of(header(record, "traceparent")),
    )


def _dead_letter(record: ConsumerRecord, reason: str) -> tuple[str | None, bytes, Envelope]:
    letter = DeadLetter(
        original=base64.b64encode(record.value or b"").decode(),
        original_key=record.key.decode(errors="replace") if record.key else None,
        error=reason,
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        consumer="features",
        at=datetime.now(UTC),
    )
    envelope = Envelope.new(
        type=EVENT_TYPES[DLQ], source="features", traceparent=header(record, "traceparent")
    )
    key = record.key.decode(errors="replace") if record.key else None
    return key, letter.model_dump_json().encode(), envelope


def _count(rows: list[Row], new: int) -> None:
    per_set: dict[str, int] = {}
    for row in rows:
        per_set[row.feature_set] = per_set.get(row.feature_set, 0) + 1
    for feature_set, count in per_set.items():
        ROWS.labels(feature_set).inc(count)
    if len(rows) > new:
        REPLAYS.inc(len(rows) - new)


class HttpServer(mode.Service):
    """The scaffold's HTTP app as a service of the faust app, started before the
    consumers (so /healthz answers and /readyz says what it waits for while partitions
    are assigned) and stopped with them; faust owns the signals."""

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
