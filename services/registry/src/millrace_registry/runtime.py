"""What the registry runs on: its database (migrated at start), the use cases ``bootstrap``
built, and the outbox relay that publishes alias moves to Kafka, started and stopped with
the app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import structlog
from millrace_common.contracts import MODEL_PUBLISHED, ModelPublished
from millrace_common.db import migrate
from millrace_common.errors import InvalidInput
from millrace_common.messaging import Producer, connect_retrying, ensure_topics
from millrace_common.outbox import OutboxRelay, PendingEvent
from millrace_common.project import Project, load_project
from millrace_common.project_reload import ProjectReloader
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters.manifests import ManifestWriter
from millrace_registry.adapters.tables import SCHEMA, outbox
from millrace_registry.artifacts import Artifacts
from millrace_registry.catalog import Catalog
from millrace_registry.config import Settings
from millrace_registry.fleet import Fleet
from millrace_registry.lifecycle import Lifecycle
from millrace_registry.monitor_intake import TOPICS, MonitorIntake
from millrace_registry.monitoring import Monitoring
from millrace_registry.run_artifacts import RunArtifacts
from millrace_registry.runs import Runs
from millrace_registry.served_archive import ServedArchive
from millrace_registry.site_objects import SiteObjects
from millrace_registry.sites import Sites
from millrace_registry.traffic import TrafficPolicies
from millrace_registry.uploads import Uploads

log = structlog.get_logger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
ConnectProducer = Callable[[], Awaitable[Producer]]
PURGE_EVERY = 3600.0
"""Seconds between the monitor's purges of what is older than its retention."""


class RelayBell:
    """Wakes the outbox relay when a use case committed events, from the worker threads
    use cases run in; rings nothing until the relay runs."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._relay: OutboxRelay | None = None

    def attach(self, relay: OutboxRelay) -> None:
        self._loop, self._relay = asyncio.get_running_loop(), relay

    def __call__(self) -> None:
        if self._loop is not None and self._relay is not None:
            self._loop.call_soon_threadsafe(self._relay.wake)


class ProjectHolder:
    """The project the monitor reads its policies from (``MILLRACE_PROJECT``), read at
    start and again on SIGHUP; None when there is none (labels then match by request id
    only, with the default horizon)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.project: Project | None = None

    def __call__(self) -> Project | None:
        return self.project

    def load(self) -> None:
        try:
            self.project = load_project(self.folder)
        except InvalidInput as exc:
            log.warning("monitor_without_project", folder=self.folder, reason=exc.message)

    async def apply(self, project: Project) -> None:
        self.project = project

    def canary_start(self, name: str) -> float | None:
        """The percent a new winner starts at as a canary, when the model's spec has
        ``monitoring.canary``; None: it takes production at once."""
        spec = self.project.models.get(name) if self.project is not None else None
        canary = spec.monitoring.canary if spec is not None else None
        return canary.steps[0] if canary is not None else None


class Runtime:
    """What the routes need, built once by ``bootstrap``; the relay (and the monitor, when
    it is on) runs from ``start``."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        factory: sessionmaker[Session],
        manifests: ManifestWriter,
        bell: RelayBell,
        connect_producer: ConnectProducer,
        lifecycle: Lifecycle,
        catalog: Catalog,
        runs: Runs,
        sites: Sites,
        site_objects: SiteObjects,
        fleet: Fleet,
        traffic: TrafficPolicies,
        uploads: Uploads,
        run_artifacts: RunArtifacts,
        artifacts: Artifacts,
        monitoring: Monitoring,
        archive: ServedArchive,
        project: ProjectHolder,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.factory = factory
        self.manifests = manifests
        self.lifecycle = lifecycle
        self.catalog = catalog
        self.runs = runs
        self.sites = sites
        self.site_objects = site_objects
        self.fleet = fleet
        self.traffic = traffic
        self.uploads = uploads
        self.run_artifacts = run_artifacts
        self.artifacts = artifacts
        self.monitoring = monitoring
        self.archive = archive
        self.project = project
        self.intake: MonitorIntake | None = None
        self.producer: Producer | None = None
        self._bell = bell
        self._connect_producer = connect_producer
        self._tasks: list[asyncio.Task[None]] = []
        self._reloader: ProjectReloader | None = None

    async def start(self) -> None:
        await asyncio.to_thread(migrate, self.engine, schema=SCHEMA, versions=MIGRATIONS)
        self._tasks.append(asyncio.create_task(self._relay_forever(), name="registry-outbox-relay"))
        if self.settings.monitor:
            await asyncio.to_thread(self.project.load)
            self._reloader = ProjectReloader(
                self.settings.project,
                current=lambda: self.project() or Project(datasets={}),
                apply=self.project.apply,
            )
            self._reloader.install()
            self._tasks.append(asyncio.create_task(self._monitor(), name="registry-monitor"))

    async def stop(self) -> None:
        if self._reloader is not None:
            self._reloader.uninstall()
        for task in self._tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        if self.producer is not None:
            await self.producer.stop()
        self.engine.dispose()

    async def ready(self) -> tuple[bool, str]:
        try:
            await asyncio.to_thread(self._ping_database)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return False, f"database unreachable: {type(exc).__name__}"
        if self.producer is None:
            return False, "waiting for the broker"
        return True, "database and producer ready"

    def _ping_database(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    async def _relay_forever(self) -> None:
        producer = await self._connect()
        relay = OutboxRelay(
            factory=self.factory,
            table=outbox,
            producer=producer,
            source="registry",
            before_send=self._before_send,
            interval=self.settings.relay_interval,
        )
        self._bell.attach(relay)
        await relay.run()

    async def _monitor(self) -> None:
        """The intake once the broker answers (the relay's producer is its dlq), and the
        checks every ``monitor_interval``; a failed check is logged and tried again."""
        while self.producer is None:
            await asyncio.sleep(0.2)
        await ensure_topics(self.settings.broker, TOPICS)
        self.intake = MonitorIntake(
            bootstrap=self.settings.broker,
            monitoring=self.monitoring,
            producer=self.producer,
            project=self.project,
            group_id=self.settings.monitor_group,
            feature_labels=self.settings.monitor_feature_labels,
        )
        intake = asyncio.create_task(self._intake_forever(self.intake), name="monitor-intake")
        purged_at = 0.0
        try:
            while True:
                await asyncio.sleep(self.settings.monitor_interval)
                try:
                    await asyncio.to_thread(self.monitoring.check)
                    if time.monotonic() - purged_at > PURGE_EVERY:
                        retention = timedelta(days=self.settings.monitor_retention_days)
                        before = datetime.now(UTC) - retention
                        await asyncio.to_thread(self.archive.run)
                        await asyncio.to_thread(self.monitoring.purge, before=before)
                        purged_at = time.monotonic()
                except Exception as exc:  # noqa: BLE001 - the next check tries again
                    log.warning("monitor_check_failed", error=repr(exc))
        finally:
            intake.cancel()
            with suppress(asyncio.CancelledError):
                await intake

    @staticmethod
    async def _intake_forever(intake: MonitorIntake) -> None:
        """The intake again after a failure (the broker away): it resumes from its group's
        committed offsets."""
        while True:
            try:
                await intake.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - start again; nothing is lost
                log.warning("monitor_intake_failed_restarting", error=repr(exc))
                await asyncio.sleep(2.0)

    async def _connect(self) -> Producer:
        """Connect to Kafka, retrying while the broker is away (the outbox keeps events)."""
        self.producer = await connect_retrying(self._connect_producer, broker=self.settings.broker)
        log.info("producer_started", broker=self.settings.broker)
        return self.producer

    async def _before_send(self, event: PendingEvent) -> None:
        """Sites following the moved alias get their manifest before anyone hears of it."""
        if event.topic != MODEL_PUBLISHED:
            return
        moved = ModelPublished.model_validate_json(event.payload)
        await asyncio.to_thread(self.manifests.write_following, model=moved.name, alias=moved.alias)
