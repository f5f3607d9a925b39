"""trainer: entrypoint wiring only (composition root, health app, ``main``).

The worker consumes ``train-requests`` (group ``trainer``); a small FastAPI app serves
/healthz, /readyz and /metrics and runs the worker in its lifespan.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

import structlog
import uvicorn
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from millrace_common.contracts import DLQ, TRAIN_REQUESTS, TrainRequest
from millrace_common.errors import IntegrityError, InvalidInput, NotFound
from millrace_common.http import health_router, install_error_handlers, telemetry
from millrace_common.logs import bind_trace, configure_logging
from millrace_common.messaging import (
    ConsumerLoop,
    Poison,
    Producer,
    connect_retrying,
    header,
    start_producer,
)
from millrace_common.objectstore import ObjectStore, open_store
from millrace_common.tracing import trace_id_of
from pydantic import ValidationError

from millrace_trainer.adapters.registry_client import HttpRegistry, RegistryPort, RegistryRefused
from millrace_trainer.config import Settings
from millrace_trainer.errors import TrainingError
from millrace_trainer.service import TrainService

log = structlog.get_logger(__name__)
ConnectProducer = Callable[[], Awaitable[Producer]]
NEVER_SUCCEEDS = (TrainingError, InvalidInput, IntegrityError, NotFound, RegistryRefused)


async def handle_record(service: TrainService, record: ConsumerRecord) -> None:
    """Decode at the edge; a request that can never succeed is poison (→ dlq)."""
    try:
        request = TrainRequest.model_validate_json(record.value or b"")
    except ValidationError as exc:
        raise Poison(f"not a TrainRequest: {exc.errors()[0]['msg']}") from None
    bind_trace(trace_id_of(header(record, "traceparent")))
    try:
        await service.handle(request)
    except NEVER_SUCCEEDS as exc:
        log.warning(
            "train_request_failed",
            model=request.model,
            request_id=request.request_id,
            error=exc.message,
        )
        raise Poison(f"{exc.code}: {exc.message}") from None


class Runtime:
    def __init__(
        self, *, settings: Settings, service: TrainService, connect_producer: ConnectProducer
    ) -> None:
        self.settings = settings
        self.service = service
        self.loop: ConsumerLoop | None = None
        self._connect_producer = connect_producer
        self._producer: Producer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="trainer-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            await self._producer.stop()

    async def ready(self) -> tuple[bool, str]:
        if self.loop is not None and self.loop.assigned.is_set():
            return True, "consuming train-requests"
        return False, "waiting for the broker and a partition assignment"

    async def _run(self) -> None:
        producer = await self._connect()
        while True:
            self.loop = ConsumerLoop(
                bootstrap=self.settings.broker,
                topics=[TRAIN_REQUESTS],
                group_id=self.settings.group_id,
                producer=producer,
                name="trainer",
                handler=lambda record: handle_record(self.service, record),
            )
            try:
                await self.loop.run()
            except KafkaError as exc:
                log.warning("consumer_failed_restarting", error=repr(exc))
                await asyncio.sleep(2.0)

    async def _connect(self) -> Producer:
        self._producer = await connect_retrying(self._connect_producer, broker=self.settings.broker)
        return self._producer


async def kafka_producer(settings: Settings) -> Producer:
    """A started producer (for the dlq), once the trainer's topics exist."""
    return await start_producer(settings.broker, source="trainer", topics=[TRAIN_REQUESTS, DLQ])


def bootstrap(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    registry: RegistryPort | None = None,
    connect_producer: ConnectProducer | None = None,
) -> Runtime:
    """The composition root: the trainer's store, registry client and producer."""
    service = TrainService(
        project_path=settings.project,
        store=store or open_store(settings.object_store),
        registry=registry
        or HttpRegistry(
            settings.registry_url,
            timeout=settings.registry_timeout,
            retry_seconds=settings.registry_retry_seconds,
        ),
        lock_file=settings.lock_file,
    )
    return Runtime(
        settings=settings,
        service=service,
        connect_producer=connect_producer or (lambda: kafka_producer(settings)),
    )


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        yield
        await runtime.stop()

    app = FastAPI(title="Millrace trainer", lifespan=lifespan, telemetry=telemetry())
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(health_router(runtime.ready))
    return app


def main() -> None:
    settings = Settings()
    configure_logging("trainer", settings.log_level)
    uvicorn.run(
        create_app(bootstrap(settings)),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
