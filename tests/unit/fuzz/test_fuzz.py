"""Hostile input, generated from each service's own /openapi.json (schemathesis): no
answer is a 5xx, and every answer is one its document describes (status, content type,
body schema). The examples are derandomized, so a run repeats the last one, and bounded
per operation, so the suite's time stays fixed."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from millrace_common.db import migrate
from millrace_common.objectstore import MemoryStore
from millrace_edge_agent.app import bootstrap as edge_bootstrap
from millrace_edge_agent.app import create_app as edge_app
from millrace_edge_agent.config import Settings as EdgeSettings
from millrace_features.app import bootstrap as features_bootstrap
from millrace_features.app import create_app as features_app
from millrace_features.config import Settings as FeaturesSettings
from millrace_features.runtime import MIGRATIONS as FEATURES_MIGRATIONS
from millrace_ingest.app import bootstrap as ingest_bootstrap
from millrace_ingest.app import create_app as ingest_app
from millrace_ingest.config import Settings as IngestSettings
from millrace_registry.app import create_app as registry_app
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support.fakes import FakeProducer
from tests.support.paths import FACTORY
from tests.support.registry import registration, registry_runtime
from tests.support.serving import app_of, promote, serving_runtime

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
BUDGET = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def seeded_registry(workdir: Path) -> FastAPI:
    """A registry with a model, two versions and a site, so that generated names and
    versions sometimes find something."""
    app = registry_app(registry_runtime(f"sqlite:///{workdir}/registry.db"))
    client = TestClient(app)
    for request_id, f1 in (("r1", 0.8), ("r2", 0.9)):
        assert client.post("/v1/models/m/versions", json=registration(request_id, f1)).is_success
    assert client.put("/v1/sites/s/deployments/m", json={"alias": "production"}).is_success
    return app


def ingest_of_the_factory() -> ASGIApp:
    """Ingest of the factory project; what it accepts goes to a producer in memory."""
    producer: Any = FakeProducer()  # a producer in memory: no broker
    runtime = ingest_bootstrap(IngestSettings(project=str(FACTORY)), producer=producer)
    runtime.started = True
    return without_lifespan(ingest_app(runtime))


def without_lifespan(app: ASGIApp) -> ASGIApp:
    """``app`` whose runtime is not started (it would wait for a broker): its lifespan
    messages are acknowledged and go no further."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})

    return asgi


def features_of_the_factory(workdir: Path) -> ASGIApp:
    """The features service's routes (train requests, drift) on a database of its own;
    its stream is not started (it would wait for a broker)."""
    settings = FeaturesSettings(
        project=str(FACTORY), database_url=f"sqlite:///{workdir}/features.db"
    )
    runtime = features_bootstrap(settings, store=MemoryStore())
    migrate(runtime.engine, schema="features", versions=FEATURES_MIGRATIONS)
    return without_lifespan(features_app(runtime))


def edge_agent_of_the_factory(workdir: Path) -> ASGIApp:
    """An edge agent with the factory project (records, predictions by features), no
    model synced yet and no centre to forward to; not started (each case would stop it,
    closing its queue)."""
    settings = EdgeSettings(site="s1", cache_dir=str(workdir / "edge"), project=str(FACTORY))
    return without_lifespan(edge_app(edge_bootstrap(settings, store=MemoryStore())))


def serving_with_a_model(workdir: Path) -> FastAPI:
    runtime = serving_runtime(workdir)
    asyncio.run(promote(runtime, 1))
    return app_of(runtime)


# built at import: schemathesis parametrizes from a schema it holds when pytest collects
WORKDIR = Path(tempfile.mkdtemp(prefix="millrace-fuzz-"))
# readiness takes no input, and its 503 (no broker here) is the documented answer
HEALTH = r"^(/readyz|/v2/health/ready)$"
REGISTRY = schemathesis.openapi.from_asgi("/openapi.json", seeded_registry(WORKDIR)).exclude(
    path_regex=HEALTH
)
INGEST = schemathesis.openapi.from_asgi("/openapi.json", ingest_of_the_factory()).exclude(
    path_regex=HEALTH
)
SERVING = schemathesis.openapi.from_asgi("/openapi.json", serving_with_a_model(WORKDIR)).exclude(
    path_regex=HEALTH
)
FEATURES = schemathesis.openapi.from_asgi(
    "/openapi.json", features_of_the_factory(WORKDIR)
).exclude(path_regex=HEALTH)
EDGE = schemathesis.openapi.from_asgi("/openapi.json", edge_agent_of_the_factory(WORKDIR)).exclude(
    path_regex=HEALTH
)


@REGISTRY.parametrize()
@BUDGET
def test_the_registry_answers_hostile_input_as_documented(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@SERVING.parametrize()
@BUDGET
def test_serving_answers_hostile_input_as_documented(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@INGEST.parametrize()
@BUDGET
def test_ingest_answers_hostile_input_as_documented(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@FEATURES.parametrize()
@BUDGET
def test_features_answers_hostile_input_as_documented(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@EDGE.parametrize()
@BUDGET
def test_the_edge_agent_answers_hostile_input_as_documented(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
