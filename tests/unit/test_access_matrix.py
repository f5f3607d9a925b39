"""Who may call what: every operation of every service's /openapi.json, called with no
credentials and with a key of each role, against the table below. The table is the
platform's access policy written out by hand; an operation it does not name fails the
test, so a new route cannot ship without deciding who may call it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from millrace_common.objectstore import MemoryStore
from millrace_edge_agent.app import bootstrap as edge_bootstrap
from millrace_edge_agent.app import create_app as edge_app
from millrace_edge_agent.config import Settings as EdgeSettings
from millrace_features.app import bootstrap as features_bootstrap
from millrace_features.app import create_app as features_app
from millrace_features.config import Settings as FeaturesSettings
from millrace_ingest.app import bootstrap as ingest_bootstrap
from millrace_ingest.app import create_app as ingest_app
from millrace_ingest.config import Settings as IngestSettings
from millrace_registry.app import create_app as registry_app
from millrace_trainer.app import bootstrap as trainer_bootstrap
from millrace_trainer.app import create_app as trainer_app
from millrace_trainer.config import Settings as TrainerSettings

from tests.support.fakes import FakeProducer
from tests.support.identity import ROLES, Keys, key_file
from tests.support.paths import FACTORY
from tests.support.registry import registry_runtime
from tests.support.serving import app_of, serving_runtime

OPEN = "anyone"
READ = "scientist deployer trainer"
PREDICT = "producer scientist deployer"
SITE = "site:s1"  # the site named in the path (s1); site:s2 is another site
ANY_SITE = "site:s1 site:s2"
HEALTH = {f"GET /{p}": OPEN for p in ("healthz", "readyz", "metrics")}

EXPECTED: dict[str, dict[str, str]] = {
    "registry": {
        **HEALTH,
        "GET /v1/models": READ,
        "GET /v1/models/{name}": READ,
        "PATCH /v1/models/{name}": "scientist deployer",
        "GET /v1/models/{name}/versions": READ,
        "POST /v1/models/{name}/versions": "scientist trainer",
        "GET /v1/models/{name}/versions/{version}": READ,
        "PATCH /v1/models/{name}/versions/{version}": "scientist deployer",
        "POST /v1/models/{name}/versions/{version}/checks": "trainer",
        "GET /v1/models/{name}/versions/{version}/lineage": READ,
        "GET /v1/models/{name}/versions/{version}/artifact": READ,
        "GET /v1/models/{name}/aliases/{alias}": READ,
        "POST /v1/models/{name}/aliases/{alias}": "deployer",
        "DELETE /v1/models/{name}/aliases/{alias}": "deployer",
        "POST /v1/models/{name}/rollback": "deployer",
        "GET /v1/models/{name}/audit": READ,
        "GET /v1/models/{name}/monitoring": READ,
        "POST /v1/models/{name}/uploads": "scientist",
        "GET /v1/models/{name}/uploads/{upload_id}": READ,
        "GET /v1/models/{name}/runs": READ,
        "GET /v1/models/{name}/runs/compare": READ,
        "GET /v1/models/{name}/runs/{run_id}": READ,
        "PUT /v1/models/{name}/runs/{run_id}": "scientist trainer",
        "GET /v1/models/{name}/runs/{run_id}/artifacts": READ,
        "PUT /v1/models/{name}/runs/{run_id}/artifacts/{path}": "scientist trainer",
        "GET /v1/models/{name}/runs/{run_id}/artifacts/{path}": READ,
        "GET /v1/models/{name}/traffic": READ,
        "PUT /v1/models/{name}/traffic": "deployer",
        "GET /v1/sites": READ,
        "GET /v1/sites/{site_id}": f"{READ} {SITE}",
        "GET /v1/sites/{site_id}/objects/{key}": f"{READ} {SITE}",
        "PUT /v1/sites/{site_id}/deployments/{model}": "deployer",
        "DELETE /v1/sites/{site_id}/deployments/{model}": "deployer",
        "POST /v1/sites/{site}/heartbeats": SITE,
        "GET /v1/sites/{site}/status": f"{READ} {SITE}",
        "GET /v1/site-groups": READ,
        "GET /v1/site-groups/{group}": READ,
        "PUT /v1/site-groups/{group}": "deployer",
        "PUT /v1/site-groups/{group}/deployments/{model}": "deployer",
        "DELETE /v1/site-groups/{group}/deployments/{model}": "deployer",
    },
    "serving": {
        **HEALTH,
        "POST /v1/models/{name}/predict": PREDICT,
        "GET /v1/models": f"{PREDICT} trainer",
        "POST /v2/models/{name}/infer": PREDICT,
        "POST /v2/models/{name}/versions/{version}/infer": PREDICT,
        "POST /v2/repository/index": f"{PREDICT} trainer",
        "GET /v2/models/stats": f"{PREDICT} trainer",
        "GET /v2/models/{name}/stats": f"{PREDICT} trainer",
        "GET /v2/models/{name}/versions/{version}/stats": f"{PREDICT} trainer",
        "GET /v2/models/{name}/config": f"{PREDICT} trainer",
        "GET /v2/models/{name}/versions/{version}/config": f"{PREDICT} trainer",
        "GET /v2": OPEN,
        "GET /v2/health/live": OPEN,
        "GET /v2/health/ready": OPEN,
        "GET /v2/models/{name}": f"{PREDICT} trainer",
        "GET /v2/models/{name}/versions/{version}": f"{PREDICT} trainer",
        "GET /v2/models/{name}/ready": f"{PREDICT} trainer",
        "GET /v2/models/{name}/versions/{version}/ready": f"{PREDICT} trainer",
        "POST /v1/admin/models/{name}/load": "deployer",
        "POST /v1/admin/models/{name}/unload": "deployer",
        "POST /v1/admin/models/{name}/reload": "deployer",
        "GET /v1/admin/traffic": READ,
    },
    "ingest": {
        **HEALTH,
        "GET /v1/datasets": f"producer {READ}",
        "GET /v1/datasets/{name}": f"producer {READ}",
        "POST /v1/datasets/{name}/records": f"producer {ANY_SITE}",
        "POST /v1/predictions": ANY_SITE,
        "POST /v1/datasets/{name}/labels": f"producer {ANY_SITE}",
    },
    "features": {
        **HEALTH,
        "POST /v1/models/{model}/train-requests": "scientist",
        "GET /v1/models/{model}/drift": READ,
        "POST /v1/feature-sets/{name}/historical-features": READ,
    },
    "trainer": {**HEALTH},
    "edge-agent": {
        **HEALTH,
        "POST /v1/models/{name}/predict": PREDICT,
        "GET /v1/models": f"{PREDICT} trainer",
        "POST /v1/datasets/{name}/records": "producer",
        "GET /v1/dead-letters": READ,
        "GET /v1/status": READ,
    },
}


def build(service: str, folder: Path, keys: Keys) -> FastAPI:
    """``service``'s app requiring credentials from ``keys``; not started (no broker)."""
    auth = keys.settings()
    if service == "registry":
        return registry_app(registry_runtime(f"sqlite:///{folder}/registry.db", **auth))
    if service == "serving":
        return app_of(serving_runtime(folder, **auth))
    if service == "ingest":
        settings = IngestSettings(project=str(FACTORY), database_url="", **auth)
        return ingest_app(ingest_bootstrap(settings, producer=FakeProducer()))  # type: ignore[arg-type]
    if service == "features":
        settings = FeaturesSettings(
            project=str(FACTORY), database_url=f"sqlite:///{folder}/features.db", **auth
        )
        return features_app(features_bootstrap(settings, store=MemoryStore()))
    if service == "trainer":
        settings = TrainerSettings(project=str(FACTORY), database_url="", **auth)
        return trainer_app(trainer_bootstrap(settings, store=MemoryStore()))
    settings = EdgeSettings(site="s1", cache_dir=str(folder / "site"), project="", **auth)
    return edge_app(edge_bootstrap(settings, store=MemoryStore()))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return key_file(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module", params=list(EXPECTED))
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, keys: Keys
) -> Iterator[tuple[str, TestClient]]:
    name = str(request.param)
    app = build(name, tmp_path_factory.mktemp(name), keys)
    yield name, TestClient(app, raise_server_exceptions=False)


def operations(app: Any) -> list[tuple[str, str]]:
    document = app.openapi()
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "put", "post", "patch", "delete"}
    ]


def concrete(path: str) -> str:
    """A path to call: the site parameters name site s1, the version is 1, the rest x."""
    path = re.sub(r"\{(site|site_id)\}", "s1", path)
    return re.sub(r"\{version\}", "1", re.sub(r"\{[a-z_]+\}", "x", path))


def test_every_operation_is_in_the_table(service: tuple[str, TestClient]) -> None:
    name, client = service
    documented = {f"{m} {p}" for m, p in operations(client.app)}
    assert documented - set(EXPECTED[name]) == set(), f"{name}: decide who may call these"
    assert set(EXPECTED[name]) - documented == set(), f"{name}: the table names gone routes"


def test_each_role_gets_what_the_table_says(service: tuple[str, TestClient], keys: Keys) -> None:
    name, client = service
    wrong = []
    for method, path in operations(client.app):
        allowed = EXPECTED[name].get(f"{method} {path}", "").split()
        url = concrete(path)
        body = {} if method in {"POST", "PUT", "PATCH"} else None
        anonymous = client.request(method, url, json=body).status_code
        if OPEN in allowed:
            if anonymous in (401, 403):
                wrong.append(f"{method} {path} anonymous: {anonymous}, open to anyone")
            continue
        if anonymous != 401:
            wrong.append(f"{method} {path} anonymous: {anonymous}, expected 401")
        for role in ROLES:
            status = client.request(method, url, json=body, headers=keys.headers(role)).status_code
            may = role in allowed or role == "admin"
            if may and status in (401, 403):
                wrong.append(f"{method} {path} {role}: {status}, expected to be let through")
            if not may and status != 403:
                wrong.append(f"{method} {path} {role}: {status}, expected 403")
    assert wrong == []
