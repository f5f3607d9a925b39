"""The data plane every transport calls (the v1 JSON route, the Open Inference Protocol
routes, the edge agent): pick the model a request names, enforce the batch limit and
the timeout, run the session, log the prediction, mirror to a shadow. Transports only
turn their wire format into a feature matrix and the output tensors back.

Which model answers is a ``Selector``'s decision (serving plugs its traffic policies in
here); how a matrix is run is a ``Runner``'s (serving plugs adaptive batching in here).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import structlog
from prometheus_client import Counter, Histogram

from millrace_common.contracts import PredictionLogged
from millrace_common.errors import InvalidInput, MillraceError, NotFound, TimedOut
from millrace_common.scoring import LoadedModel, ModelSlots, format_outputs

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")
PredictionSink = Callable[["PendingLog"], None]
"""Receives each prediction's log, unbuilt; must not block (serving queues it for Kafka,
the edge agent for its disk) and builds it (``PendingLog.event``) off the request path."""

Outputs = list[np.ndarray]
Runner = Callable[[LoadedModel, np.ndarray], Outputs | Awaitable[Outputs]]
"""Runs a feature matrix through a model: its raw output tensors at once, or an awaitable
of them (a batch window, a thread). A runner that answers at once spares the request the
timeout's timer: there was nothing to wait on."""

REQUESTS = Counter(
    "millrace_predict_requests_total", "Predict requests", ["model", "version", "status"]
)
LATENCY = Histogram(
    "millrace_predict_latency_seconds",
    "Predict latency, parse to response",
    ["model"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
SHADOW_FAILURES = Counter(
    "millrace_shadow_failures_total", "Shadow (mirrored) predictions that failed", ["model"]
)
INLINE_ROWS = 64
INLINE_ROW_SECONDS = 100e-6
"""onnxruntime releases the GIL while it scores. A model whose row costs more than this
scores on a thread, so the event loop goes on reading requests (and the other core
scores); a cheaper one, up to INLINE_ROWS rows, scores inline: the hop would cost more."""
DEFAULT_ALIAS = "production"


@dataclass(frozen=True)
class Route:
    """What a request asks for: a model by name, and an alias or a pinned version."""

    name: str
    alias: str | None = None
    version: int | None = None
    key: str | None = None
    """A routing key (user, machine…): the same key always gets the same version."""
    entity: str | None = None
    """The request's first entity id, a routing key for policies keyed by entity."""


@dataclass(frozen=True)
class Choice:
    model: LoadedModel
    alias: str | None
    """The alias that answers, or None for a version pinned by the request."""
    shadow: LoadedModel | None = None
    shadow_alias: str | None = None


Selector = Callable[[Route], Choice]

Recover = Callable[[Choice, Exception], Choice | None]
"""Given a choice whose model failed to score, another to try once (the edge agent's
last-known-good model), or None to let the failure stand."""


def slot_selector(slots: ModelSlots) -> Selector:
    """No traffic policy: the pinned version if the request names one, else its alias."""

    def select(route: Route) -> Choice:
        if route.version is not None:
            model = slots.find_version(route.name, route.version)
            if model is None:
                raise NotFound(
                    f"model '{route.name}' has no loaded version {route.version}", field="version"
                )
            alias = next((a for a, m in slots.aliases_of(route.name).items() if m is model), None)
            return Choice(model=model, alias=alias)
        alias = route.alias or DEFAULT_ALIAS
        return Choice(model=slots.get(route.name, alias), alias=alias)

    return select


def scores_inline(model: LoadedModel, rows: int) -> bool:
    """Whether ``rows`` rows of ``model`` cost less on the event loop than a thread hop."""
    return rows <= INLINE_ROWS and model.row_seconds <= INLINE_ROW_SECONDS


def run_now(model: LoadedModel, matrix: np.ndarray) -> Outputs | Awaitable[Outputs]:
    """The default runner: cheap work at once, costly work on a thread."""
    if scores_inline(model, len(matrix)):
        return model.run(matrix)
    return asyncio.to_thread(model.run, matrix)


async def run_inline(model: LoadedModel, matrix: np.ndarray) -> Outputs:
    """``run_now`` for callers that always await."""
    return await settled(run_now(model, matrix))


async def settled(result: Outputs | Awaitable[Outputs]) -> Outputs:
    return result if isinstance(result, list) else await result


@functools.cache
def _requests(model: str, version: int, status: str) -> Counter:
    """Labelled children looked up once: ``labels()`` takes a lock and checks its
    arguments on every call, which shows on a request that scores in microseconds."""
    return REQUESTS.labels(model, str(version), status)


def _since(started: float) -> int:
    """Nanoseconds since ``started`` (a ``perf_counter`` reading)."""
    return int((time.perf_counter() - started) * 1e9)


@functools.cache
def _latency(model: str) -> Histogram:
    return LATENCY.labels(model)


_Logged = tuple[str | None, list[str] | None, bool]
"""A request's id and entities, and whether its log was sampled: the shadow's log follows."""


@dataclass
class DataPlane:
    slots: ModelSlots
    select: Selector | None = None
    run: Runner = run_now
    sink: PredictionSink | None = None
    log_sample_rate: float = 1.0
    """The share of answered predictions whose log goes to ``sink``, drawn before the
    log is built, so an unsampled prediction costs nothing."""
    max_rows: int | None = None
    timeout: float | None = None
    recover: Recover | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    def choose(self, route: Route) -> Choice:
        try:
            return (self.select or self._plain)(route)
        except NotFound:
            REQUESTS.labels("unknown", "", NotFound.code).inc()
            raise

    @functools.cached_property
    def _plain(self) -> Selector:
        return slot_selector(self.slots)

    def check_rows(self, rows: int, *, field: str) -> None:
        if self.max_rows is not None and rows > self.max_rows:
            raise InvalidInput(
                f"{rows} rows is more than the maximum batch of {self.max_rows}", field=field
            )

    async def infer(
        self, choice: Choice, matrix: np.ndarray, *, started: float, request_id: str | None = None
    ) -> list[np.ndarray]:
        """Score ``matrix`` on the chosen model; counts, times and logs the request."""
        _answered, outputs = await self.answer(
            choice, matrix, started=started, request_id=request_id
        )
        return outputs

    async def answer(
        self,
        choice: Choice,
        matrix: np.ndarray,
        *,
        started: float,
        request_id: str | None = None,
        entity_ids: list[str] | None = None,
    ) -> tuple[Choice, list[np.ndarray]]:
        """Like ``infer``, and also says which choice answered: with ``recover`` set, a
        model that fails to score is replaced, for this request, by the one it names.
        The log carries ``request_id`` (one is drawn when it is None) and the entities the
        rows were looked up for, so that labels arriving later find the prediction."""
        try:
            self.check_rows(len(matrix), field="instances")
            outputs = await self._run_bounded(choice.model, matrix)
        except MillraceError as exc:
            self.failed(choice, exc, started=started)
            raise
        except Exception as exc:
            retry = self.recover(choice, exc) if self.recover is not None else None
            if retry is None:
                _requests(choice.model.name, choice.model.version, "internal_error").inc()
                choice.model.stats.failed(ns=_since(started))
                raise
            _requests(choice.model.name, choice.model.version, "recovered").inc()
            choice = retry
            outputs = await self._run_bounded(choice.model, matrix)
        model = choice.model
        elapsed = time.perf_counter() - started
        _requests(model.name, model.version, "ok").inc()
        _latency(model.name).observe(elapsed)
        model.stats.answered(rows=len(matrix), ns=int(elapsed * 1e9))
        sampled = self.sink is not None and self._sampled()
        if self.sink is not None and sampled:
            self.sink(
                prediction_log(
                    model, choice.alias, matrix, outputs, elapsed, request_id, entity_ids
                )
            )
        if choice.shadow is not None:
            request_id = request_id or next_request_id()
            self._mirror(
                choice.shadow, choice.shadow_alias, matrix, (request_id, entity_ids, sampled)
            )
        return choice, outputs

    def _sampled(self) -> bool:
        return self.log_sample_rate >= 1.0 or random.random() < self.log_sample_rate

    def failed(self, choice: Choice, exc: MillraceError, *, started: float | None = None) -> None:
        """Count a request that failed (in its transport: bad tensors, bad features; or
        scoring: too many rows, a timeout), ``started`` at that ``perf_counter``."""
        _requests(choice.model.name, choice.model.version, exc.code).inc()
        choice.model.stats.failed(ns=0 if started is None else _since(started))

    async def _run_bounded(self, model: LoadedModel, matrix: np.ndarray) -> Outputs:
        result = self.run(model, matrix)
        if isinstance(result, list):
            return result
        if self.timeout is None:
            return await result
        try:
            async with asyncio.timeout(self.timeout):
                return await result
        except TimeoutError:
            raise TimedOut(f"scoring took longer than {self.timeout}s") from None

    def _mirror(
        self, shadow: LoadedModel, alias: str | None, matrix: np.ndarray, logged: _Logged
    ) -> None:
        """Score the shadow after the answer has gone, off the request's path."""
        task = asyncio.get_running_loop().create_task(self._shadow(shadow, alias, matrix, logged))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _shadow(
        self, shadow: LoadedModel, alias: str | None, matrix: np.ndarray, logged: _Logged
    ) -> None:
        """The shadow's log shares the request id of the answer's (and is sampled with
        it), so the two sides are compared on the same rows."""
        started = time.perf_counter()
        try:
            outputs = await settled(self.run(shadow, matrix))
        except Exception as exc:  # noqa: BLE001 - a shadow never affects the caller
            SHADOW_FAILURES.labels(shadow.name).inc()
            log.warning("shadow_failed", model=shadow.name, version=shadow.version, error=repr(exc))
            return
        request_id, entity_ids, sampled = logged
        if self.sink is not None and sampled:
            elapsed = time.perf_counter() - started
            self.sink(
                prediction_log(shadow, alias, matrix, outputs, elapsed, request_id, entity_ids)
            )


@dataclass(frozen=True, slots=True)
class PendingLog:
    """A prediction's log as the request leaves it: references and a clock reading, no
    work. Hashing the inputs, formatting the outputs, the request id and the contract
    (~40 µs, more than scoring a small model) happen in ``event``, which the sink's
    background task calls. Nothing it holds is written to after the answer."""

    model: LoadedModel
    alias: str | None
    matrix: np.ndarray
    outputs: list[np.ndarray]
    elapsed: float
    at: float
    request_id: str | None = None
    entity_ids: list[str] | None = None

    def event(self, *, site: str | None = None) -> PredictionLogged:
        return PredictionLogged(
            request_id=self.request_id or next_request_id(),
            model=self.model.name,
            version=self.model.version,
            alias=self.alias,
            inputs_sha256=hashlib.sha256(self.matrix.tobytes()).hexdigest(),
            outputs=format_outputs(self.model.schema.task, self.outputs),
            latency_ms=round(self.elapsed * 1000, 3),
            at=datetime.fromtimestamp(self.at, UTC),
            site=site,
            entity_ids=self.entity_ids,
            inputs=_rows(self.matrix),
        )


def _rows(matrix: np.ndarray) -> list[list[float | None]]:
    """The feature values of each row, NaN (missing) as None."""
    rows: list[list[float | None]] = matrix.astype(np.float64).tolist()
    if np.isnan(matrix).any():
        return [[None if v != v else v for v in row] for row in rows]
    return rows


def prediction_log(
    model: LoadedModel,
    alias: str | None,
    matrix: np.ndarray,
    outputs: list[np.ndarray],
    elapsed: float,
    request_id: str | None = None,
    entity_ids: list[str] | None = None,
) -> PendingLog:
    return PendingLog(model, alias, matrix, outputs, elapsed, time.time(), request_id, entity_ids)


async def cooperatively(items: Sequence[T], work: Callable[[T], R], *, chunk: int = 16) -> list[R]:
    """``work`` over ``items`` a few at a time, yielding to the event loop in between: for
    background work that shares the loop with requests (building prediction logs, ~40 µs
    each). Done at once, a batch holds the requests in flight up for all of it; on a
    thread, it contends with them for the GIL."""
    done: list[R] = []
    for start in range(0, len(items), chunk):
        done.extend(work(item) for item in items[start : start + chunk])
        await asyncio.sleep(0)
    return done


_request_numbers = itertools.count()  # next() on it is atomic: safe from any thread


@functools.cache
def _request_id_prefix() -> int:
    """A random 64-bit prefix, drawn once per process."""
    return secrets.randbits(64) << 64


def next_request_id() -> str:
    """UUID-shaped: the process's random prefix and a counter, so ids are unique across
    processes and restarts without asking the OS for randomness per log. Formatted by
    hand: it is drawn on every predict request, and ``uuid.UUID`` costs 2.4 times as
    much (a profile of the predict route put it at 2.8% of the samples)."""
    h = f"{_request_id_prefix() | next(_request_numbers):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def describe_loaded(model: LoadedModel, alias: str | None) -> dict[str, Any]:
    return {
        "name": model.name,
        "alias": alias,
        "version": model.version,
        "sha256": model.sha256,
        "task": model.schema.task,
        "features": model.schema.features,
        "loaded_at": datetime.fromtimestamp(model.loaded_at, UTC).isoformat(),
    }
