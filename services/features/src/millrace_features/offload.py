"""Snapshots and drift measurements on a process of their own.

Both read a whole stretch of the offline store and build Parquet, quantile bins and
histograms in Python: on the worker's own interpreter they would hold the GIL for
seconds and stall the stream (measured: freshness p99 1.9 s instead of 0.24 s while the
factory project cut a snapshot every 2,000 labelled rows). One child process does them,
one at a time, with its own engine, store and project; what it answers is pickled back.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import structlog
from millrace_common.contracts import TrainRequest
from millrace_common.db import make_engine, session_factory
from millrace_common.errors import Unavailable
from millrace_common.objectstore import ObjectStore, open_store
from millrace_common.project import Project, load_project
from sqlalchemy.orm import Session, sessionmaker

from millrace_features.adapters.snapshots import snapshot_and_request
from millrace_features.drift_check import DriftMeasurement, measure_drift
from millrace_features.on_demand import TrainAsk, request_training

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Place:
    """Where the child finds the store: picklable, unlike engines and clients."""

    database_url: str
    object_store: str
    project: str


class Offload:
    """The worker's handle on the child process (started on first use)."""

    def __init__(self, place: Place) -> None:
        self._place = place
        self._pool: ProcessPoolExecutor | None = None

    async def _call(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in the child. A child that died (killed, out of memory) leaves
        its pool broken for good: the pool is replaced and the call made once more, then
        it is a 503 the caller may retry."""
        for attempt in (1, 2):
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_open,
                    initargs=(self._place,),
                )
            try:
                return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
            except BrokenProcessPool as exc:
                log.warning("offload_process_died", attempt=attempt, error=repr(exc))
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
        raise Unavailable(
            "the process that cuts snapshots and measures drift died twice; retry shortly",
            retry_after=2,
        )

    async def warm(self) -> None:
        """Start the child now: its start (a new interpreter importing the snapshot and
        drift stack, ~2 s of CPU) is paid at the worker's start, not in the middle of
        the stream when the first snapshot is due."""
        try:
            await self._call(_warm)
        except Unavailable as exc:
            log.warning("offload_not_started", error=exc.message)

    async def snapshot(self, model: str, reason: str) -> TrainRequest:
        """A snapshot of the model's feature set now, its train request in the outbox."""
        request: TrainRequest = await self._call(_snapshot, model, reason)
        return request

    async def train_on_demand(self, model: str, ask: TrainAsk) -> TrainRequest:
        request: TrainRequest = await self._call(_on_demand, model, ask)
        return request

    async def drift(self, model: str, max_rows: int) -> DriftMeasurement:
        measured: DriftMeasurement = await self._call(_drift, model, max_rows)
        return measured

    def restart(self) -> None:
        """The next call starts a new child, which reads the project again."""
        self.close()
        self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class _Opened:
    factory: sessionmaker[Session]
    store: ObjectStore
    project: Project


_opened: _Opened | None = None  # the child's own, built once by _open


def _open(place: Place) -> None:
    """The child's clients, built with no call to the network: an initializer that
    fails breaks its pool for good (the worker made the bucket at its start)."""
    global _opened
    _opened = _Opened(
        factory=session_factory(make_engine(place.database_url, pool_size=1)),
        store=open_store(place.object_store, create_bucket=False),
        project=load_project(place.project),
    )


def _warm() -> None:
    """Nothing: the child is up once it has run (its modules imported, ``_open`` done)."""


def _child() -> _Opened:
    assert _opened is not None, "the offload process was not initialised"
    return _opened


def _snapshot(model: str, reason: str) -> TrainRequest:
    child = _child()
    spec = child.project.model(model)
    return snapshot_and_request(
        factory=child.factory,
        store=child.store,
        feature_set=child.project.feature_set(spec.feature_set),
        model=spec,
        reason=reason,
    )


def _on_demand(model: str, ask: TrainAsk) -> TrainRequest:
    child = _child()
    return request_training(
        factory=child.factory, store=child.store, project=child.project, model=model, ask=ask
    )


def _drift(model: str, max_rows: int) -> DriftMeasurement:
    child = _child()
    return measure_drift(
        factory=child.factory, project=child.project, model=model, max_rows=max_rows
    )
