"""registry: entrypoint wiring only (composition root, FastAPI app, ``main``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import sqlalchemy as sa
import structlog
import uvicorn
from fastapi import FastAPI
from millrace_common.contracts import MODEL_PUBLISHED, ModelPublished
from millrace_common.db import make_engine, migrate, session_factory
from millrace_common.errors import InvalidInput
from millrace_common.http import health_router, install_error_handlers, telemetry
from millrace_common.logs import configure_logging
from millrace_common.messaging import Producer, connect_retrying, start_producer
from millrace_common.objectstore import ObjectStore, open_store
from millrace_common.outbox import OutboxRelay, PendingEvent
from millrace_common.signing import Signer
from sqlalchemy import Engine

from millrace_registry.adapters.manifests import ManifestWriter
from millrace_registry.adapters.tables import SCHEMA, outbox
from millrace_registry.api import router
from millrace_registry.config import Settings
from millrace_registry.fleet import fleet_router
from millrace_registry.service import Registry
from millrace_registry.traffic import traffic_router
from millrace_registry.ui import home_router, ui_router

log = structlog.get_logger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
ConnectProducer = Callable[[], Awaitable[Producer]]


class Runtime:
    """Everything the registry runs on: DB, object store, and the outbox relay to Kafka."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        store: ObjectStore,
        connect_producer: ConnectProducer,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.factory = session_factory(engine)
        signer = (
            Signer.from_pem_file(settings.signing_key_file) if settings.signing_key_file else None
        )
        self.manifests = ManifestWriter(factory=self.factory, store=store, signer=signer)
        self.registry = Registry(factory=self.factory, on_commit=self.wake)
        self.producer: Producer | None = None
        self.relay: OutboxRelay | None = None
        self._connect_producer = connect_producer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(migrate, self.engine, schema=SCHEMA, versions=MIGRATIONS)
        self._task = asyncio.create_task(self._relay_forever(), name="registry-outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self.producer is not None:
            await self.producer.stop()
        self.engine.dispose()

    def wake(self) -> None:
        """Relay now; safe to call from the worker threads the use cases run in."""
        if self._loop is not None and self.relay is not None:
            self._loop.call_soon_threadsafe(self.relay.wake)

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
        self.relay = OutboxRelay(
            factory=self.factory,
            table=outbox,
            producer=producer,
            source="registry",
            before_send=self._before_send,
            interval=self.settings.relay_interval,
        )
        await self.relay.run()

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


async def kafka_producer(settings: Settings) -> Producer:
    return await start_producer(settings.broker, source="registry", topics=[MODEL_PUBLISHED])


def bootstrap(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    engine: Engine | None = None,
    connect_producer: ConnectProducer | None = None,
) -> Runtime:
    """The composition root: build the registry's clients from its settings."""
    return Runtime(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        store=store or open_store(settings.object_store),
        connect_producer=connect_producer or (lambda: kafka_producer(settings)),
    )


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        yield
        await runtime.stop()

    app = FastAPI(title="Millrace registry", lifespan=lifespan, telemetry=telemetry())
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(health_router(runtime.ready))
    app.include_router(router)
    app.include_router(fleet_router)
    app.include_router(traffic_router)
    app.include_router(ui_router)
    app.include_router(home_router)
    return app


def main() -> None:
    settings = Settings()
    configure_logging("registry", settings.log_level)
    try:
        runtime = bootstrap(settings)
    except InvalidInput as exc:  # e.g. an unreadable signing key: one line, not a trace
        raise SystemExit(f"millrace-registry: {exc.message}") from None
    uvicorn.run(
        create_app(runtime),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
