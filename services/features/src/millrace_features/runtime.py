"""What the features service runs on: its project, database, object store and outbox
relay, the drift gate, and the faust app's state for readiness."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import faust
import sqlalchemy as sa
import structlog
from aiokafka.errors import KafkaError
from millrace_common.contracts import DLQ, FEATURES, RAW
from millrace_common.db import migrate
from millrace_common.messaging import Producer, ensure_topics, wait_for_broker
from millrace_common.objectstore import ObjectStore
from millrace_common.outbox import OutboxRelay
from millrace_common.project import Project
from millrace_common.project_reload import ProjectReloader
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from millrace_features.adapters.store import FeatureStore
from millrace_features.config import Settings
from millrace_features.drift_check import DriftGate
from millrace_features.offload import Offload

log = structlog.get_logger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


class Runtime:
    def __init__(
        self,
        *,
        settings: Settings,
        project: Project,
        store: ObjectStore,
        engine: Engine,
        factory: sessionmaker[Session],
        relay: OutboxRelay,
        producer: Producer,
        offload: Offload,
    ) -> None:
        self.settings = settings
        self.project = project
        self.store = store
        self.engine = engine
        self.factory = factory
        self.features = FeatureStore(factory)
        self.relay = relay
        self.producer = producer
        self.offload = offload
        self.drift_gate = DriftGate()
        self.drift_checked = float("-inf")  # monotonic time of the last drift measurement
        self.started_at = datetime.now(UTC)
        self.stream: faust.App | None = None  # set once the stream is built
        self.assigned = False
        # set while batches fail (each retried, nothing skipped): the store's error, or
        # the worker's own when the rows cannot be computed
        self.database_error: str | None = None
        self.batch_error: str | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._warm_task: asyncio.Task[None] | None = None
        self.producer_started = asyncio.Event()
        # what must follow a reloaded project besides ``self.project`` (the stream's engine)
        self.on_project: list[Callable[[Project], Awaitable[None]]] = []
        self.reloader = ProjectReloader(
            settings.project, current=lambda: self.project, apply=self.use_project
        )

    async def use_project(self, project: Project) -> None:
        """A reloaded project (SIGHUP): the stream takes it between two batches, with its
        windows started again from the store (a feature set of a new version computes its
        own from the same recorded inputs); the child that cuts snapshots restarts on it."""
        for follow in self.on_project:
            await follow(project)
        self.project = project
        self.offload.restart()

    def prepare(self) -> None:
        """Before the stream starts: the schema migrated and the topics there."""
        migrate(self.engine, schema="features", versions=MIGRATIONS)
        asyncio.run(self._prepare_broker())

    async def _prepare_broker(self) -> None:
        await wait_for_broker(self.settings.broker)
        await ensure_topics(
            self.settings.broker, [RAW, FEATURES, DLQ], partitions=self.settings.partitions
        )

    async def start(self) -> None:
        self.reloader.install()
        self._relay_task = asyncio.create_task(self._relay(), name="features-outbox-relay")
        self._warm_task = asyncio.create_task(self.offload.warm(), name="features-offload-warm")

    async def stop(self) -> None:
        self.reloader.uninstall()
        self.offload.close()
        if self._relay_task is not None:
            self._relay_task.cancel()
            with suppress(asyncio.CancelledError):
                await self._relay_task

    async def _relay(self) -> None:
        while True:
            try:
                await self.producer.start()
                break
            except KafkaError as exc:
                log.warning("producer_unavailable_retrying", error=repr(exc))
                await asyncio.sleep(2.0)
        self.producer_started.set()
        try:
            await self.relay.run()
        finally:
            await self.producer.stop()

    async def ready(self) -> tuple[bool, str]:
        try:
            await asyncio.to_thread(self._ping_database)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return False, f"database unreachable: {type(exc).__name__}"
        if self.database_error is not None:
            return False, f"database unreachable, retrying: {self.database_error}"
        if self.batch_error is not None:
            return False, f"a batch failed and is retried: {self.batch_error}"
        if not self.assigned:
            return False, "waiting for a partition assignment of raw"
        return True, "consuming raw"

    def _ping_database(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def drift_due(self) -> bool:
        """Whether this timer tick measures drift (at most every drift_check_seconds)."""
        now = time.monotonic()
        if now - self.drift_checked < self.settings.drift_check_seconds:
            return False
        self.drift_checked = now
        return True
