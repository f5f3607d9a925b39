"""What the features service runs on: its project, database, object store and outbox
relay, the drift gate, and the faust app's state for readiness."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import faust
from millrace_common.contracts import DLQ, FEATURES, RAW
from millrace_common.db import migrate
from millrace_common.messaging import Producer, ensure_topics, wait_for_broker
from millrace_common.objectstore import ObjectStore
from millrace_common.outbox import OutboxRelay
from millrace_common.project import Project
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from millrace_features.adapters.store import FeatureStore
from millrace_features.config import Settings
from millrace_features.drift_check import DriftGate

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
    ) -> None:
        self.settings = settings
        self.project = project
        self.store = store
        self.engine = engine
        self.factory = factory
        self.features = FeatureStore(factory)
        self.relay = relay
        self.producer = producer
        self.drift_gate = DriftGate()
        self.drift_checked = float("-inf")  # monotonic time of the last drift measurement
        self.started_at = datetime.now(UTC)
        self.stream: faust.App | None = None  # set once the stream is built
        self.assigned = False
        self._relay_task: asyncio.Task[None] | None = None

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
        self._relay_task = asyncio.create_task(self._relay(), name="features-outbox-relay")

    async def stop(self) -> None:
        if self._relay_task is not None:
            self._relay_task.cancel()
            with suppress(asyncio.CancelledError):
                await self._relay_task

    async def _relay(self) -> None:
        await self.producer.start()
        try:
            await self.relay.run()
        finally:
            await self.producer.stop()

    async def ready(self) -> tuple[bool, str]:
        if not self.assigned:
            return False, "waiting for a partition assignment of raw"
        if self.stream is not None and self.stream.rebalancing:
            return False, "rebalancing"
        return True, "consuming raw"

    def drift_due(self) -> bool:
        """Whether this timer tick measures drift (at most every drift_check_seconds)."""
        now = time.monotonic()
        if now - self.drift_checked < self.settings.drift_check_seconds:
            return False
        self.drift_checked = now
        return True
