"""features: a faust-streaming worker that turns raw records into point-in-time feature
rows (offline and online store, the ``features`` topic) and decides when to retrain; its
HTTP app serves training on demand, drift, /healthz, /readyz and /metrics. The
composition root (``bootstrap``), the apps and ``main``."""

from __future__ import annotations

import sys

import faust
from fastapi import FastAPI
from millrace_common.db import make_engine, session_factory
from millrace_common.errors import MillraceError
from millrace_common.logs import configure_logging
from millrace_common.messaging import Producer
from millrace_common.objectstore import ObjectStore, open_store
from millrace_common.outbox import OutboxRelay
from millrace_common.project import load_project
from millrace_common.service import secure, service_app

from millrace_features.access import RULES
from millrace_features.adapters.tables import outbox
from millrace_features.api import feature_sets, router
from millrace_features.config import Settings
from millrace_features.offload import Offload, Place
from millrace_features.runtime import Runtime
from millrace_features.stream import build_stream


def bootstrap(settings: Settings, *, store: ObjectStore | None = None) -> Runtime:
    engine = make_engine(settings.database_url)
    factory = session_factory(engine)
    # large batches: a batch of raw records becomes one batch of rows per partition
    producer = Producer(settings.broker, source="features", max_batch_bytes=1024 * 1024)
    return Runtime(
        settings=settings,
        project=load_project(settings.project),
        store=store or open_store(settings.object_store),
        engine=engine,
        factory=factory,
        producer=producer,
        relay=OutboxRelay(factory=factory, table=outbox, producer=producer, source="features"),
        offload=Offload(Place(settings.database_url, settings.object_store, settings.project)),
    )


def create_app(runtime: Runtime) -> FastAPI:
    app = service_app(runtime, title="Millrace features", description=__doc__)
    app.include_router(router)
    app.include_router(feature_sets)
    secure(app, runtime.settings, RULES)
    return app


def main() -> None:
    settings = Settings()
    configure_logging("features", settings.log_level)
    try:
        runtime = bootstrap(settings)
        runtime.prepare()
        http = create_app(runtime)  # a bad keys file or auth setting: one line too
    except MillraceError as exc:
        raise SystemExit(f"millrace-features: {exc.message}") from None
    stream = build_stream(runtime, http=http)
    worker = faust.Worker(
        stream, loglevel="WARNING", redirect_stdouts=False, override_logging=False
    )
    sys.exit(worker.execute_from_commandline())


if __name__ == "__main__":
    main()
