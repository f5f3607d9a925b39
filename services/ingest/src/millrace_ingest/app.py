"""ingest: the REST front door into ``raw``, and into ``predictions`` for the prediction
logs of edge agents. The composition root (``bootstrap``), the app and ``main``."""

from __future__ import annotations

from fastapi import FastAPI
from millrace_common.messaging import Producer
from millrace_common.project import load_project
from millrace_common.service import run, secure, service_app

from millrace_ingest.access import RULES
from millrace_ingest.api import router
from millrace_ingest.config import Settings
from millrace_ingest.runtime import Runtime


def bootstrap(settings: Settings, *, producer: Producer | None = None) -> Runtime:
    return Runtime(
        settings=settings,
        project=load_project(settings.project),
        producer=producer
        or Producer(
            settings.broker,
            source="ingest",
            # a batch the broker has not taken by the time the post is answered 503 is
            # dropped by the producer, not sent later beside the client's retry
            request_timeout_ms=int(settings.send_timeout * 1000),
        ),
    )


def create_app(runtime: Runtime) -> FastAPI:
    app = service_app(runtime, title="Millrace ingest", description=__doc__)
    app.include_router(router)
    secure(app, runtime.settings, RULES)
    return app


def main() -> None:
    settings = Settings()
    run("ingest", settings, lambda: create_app(bootstrap(settings)))


if __name__ == "__main__":
    main()
