"""registry: registered models, versions, aliases, the audit log, training runs, site
deployments, the fleet's last reported state and traffic policies, with a read-only web
UI under /ui. Every alias move reaches ``model-published`` through a transactional outbox.
The composition root (``bootstrap``), the app and ``main``."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi import FastAPI
from millrace_common.contracts import MODEL_PUBLISHED
from millrace_common.db import make_engine, session_factory
from millrace_common.http import BulkRoutes
from millrace_common.messaging import Producer, start_producer
from millrace_common.objectstore import ObjectStore, open_store
from millrace_common.service import run, secure, service_app
from millrace_common.signing import Signer
from sqlalchemy import Engine

from millrace_registry.access import RULES
from millrace_registry.adapters.features_client import FeaturesClient
from millrace_registry.adapters.manifests import ManifestWriter
from millrace_registry.api import router
from millrace_registry.artifacts import Artifacts
from millrace_registry.catalog import Catalog
from millrace_registry.config import Settings
from millrace_registry.fleet import Fleet
from millrace_registry.lifecycle import Lifecycle
from millrace_registry.monitoring import Monitoring
from millrace_registry.references import References
from millrace_registry.run_artifacts import RunArtifacts
from millrace_registry.runs import Runs
from millrace_registry.runtime import (
    MIGRATIONS,
    ConnectProducer,
    ProjectHolder,
    RelayBell,
    Runtime,
)
from millrace_registry.served_archive import ServedArchive
from millrace_registry.site_objects import SiteObjects
from millrace_registry.sites import Sites
from millrace_registry.traffic import TrafficPolicies
from millrace_registry.ui import home_router, ui_router
from millrace_registry.uploads import Uploads

__all__ = ["MIGRATIONS", "Runtime", "bootstrap", "create_app", "main"]


async def kafka_producer(settings: Settings) -> Producer:
    return await start_producer(settings.broker, source="registry", topics=[MODEL_PUBLISHED])


def bootstrap(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    engine: Engine | None = None,
    connect_producer: ConnectProducer | None = None,
) -> Runtime:
    """The composition root: the registry's clients and use cases, built once from its
    settings (an unreadable signing key is an ``InvalidInput`` naming the file)."""
    signer = Signer.from_pem_file(settings.signing_key_file) if settings.signing_key_file else None
    engine = engine or make_engine(settings.database_url)
    factory = session_factory(engine)
    store = store or open_store(settings.object_store)
    manifests = ManifestWriter(factory=factory, store=store, signer=signer)
    bell = RelayBell()
    runs = Runs(factory=factory)
    artifacts = Artifacts(store)
    project = ProjectHolder(settings.project)
    lifecycle = Lifecycle(
        factory=factory, artifacts=artifacts, on_commit=bell, canary_start=project.canary_start
    )
    traffic = TrafficPolicies(factory=factory)
    features = FeaturesClient(settings.features_url, headers=settings.bearer())
    monitoring = Monitoring(
        factory=factory,
        lifecycle=lifecycle,
        traffic=traffic,
        project=project,
        ask_retrain=features.ask_retrain,
        references=References(factory=factory, store=store),
    )
    return Runtime(
        settings=settings,
        engine=engine,
        factory=factory,
        manifests=manifests,
        bell=bell,
        connect_producer=connect_producer or (lambda: kafka_producer(settings)),
        lifecycle=lifecycle,
        catalog=Catalog(factory=factory),
        runs=runs,
        sites=Sites(factory=factory, manifests=manifests),
        site_objects=SiteObjects(store),
        fleet=Fleet(factory=factory),
        traffic=traffic,
        uploads=Uploads(store, max_bytes=settings.max_upload_bytes),
        run_artifacts=RunArtifacts(store, runs=runs, max_bytes=settings.max_upload_bytes),
        artifacts=artifacts,
        monitoring=monitoring,
        archive=ServedArchive(
            factory=factory,
            store=store,
            monitoring=monitoring,
            after=timedelta(hours=settings.monitor_archive_after_hours),
        ),
        project=project,
    )


UPLOADS = re.compile(r"^/v1/models/[^/]+/(uploads|runs/[^/]+/artifacts/.+)$")
"""The routes whose bodies are files: MILLRACE_REGISTRY_MAX_UPLOAD_BYTES, not the JSON limit."""


def create_app(runtime: Runtime) -> FastAPI:
    settings = runtime.settings
    bulk = BulkRoutes(UPLOADS, settings.max_upload_bytes, settings.upload_body_timeout)
    app = service_app(runtime, title="Millrace registry", description=__doc__, bulk=bulk)
    app.include_router(router)
    app.include_router(ui_router)
    app.include_router(home_router)
    secure(app, runtime.settings, RULES)
    return app


def main() -> None:
    settings = Settings()
    run("registry", settings, lambda: create_app(bootstrap(settings)))


if __name__ == "__main__":
    main()
