"""trainer: consumes ``train-requests`` (group ``trainer``) and turns each into a verified
ONNX model registered with its lineage; its HTTP app serves /healthz, /readyz and
/metrics. The composition root (``bootstrap``), the app and ``main``."""

from __future__ import annotations

import socket

from fastapi import FastAPI
from millrace_common.contracts import DLQ, TRAIN_REQUESTS
from millrace_common.messaging import Producer, start_producer
from millrace_common.objectstore import ObjectStore, open_store
from millrace_common.service import run, secure, service_app

from millrace_trainer.access import RULES
from millrace_trainer.adapters.registry_client import HttpRegistry, RegistryPort
from millrace_trainer.config import Settings
from millrace_trainer.handler import TrainService
from millrace_trainer.runtime import ConnectProducer, Runtime


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
            headers=settings.bearer(),
        ),
        lock_file=settings.lock_file,
        trainer=settings.instance or socket.gethostname(),
    )
    return Runtime(
        settings=settings,
        service=service,
        connect_producer=connect_producer or (lambda: kafka_producer(settings)),
    )


def create_app(runtime: Runtime) -> FastAPI:
    app = service_app(runtime, title="Millrace trainer", description=__doc__)
    secure(app, runtime.settings, RULES)
    return app


def main() -> None:
    settings = Settings()
    run("trainer", settings, lambda: create_app(bootstrap(settings)))


if __name__ == "__main__":
    main()
