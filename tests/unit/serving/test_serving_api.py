"""The predict route as a client sees it: explicit features, entity ids looked up in
the online store, and 4xx answers that name what is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from millrace_common.db import make_engine
from millrace_common.feature_store import metadata, online_rows
from millrace_common.objectstore import MemoryStore
from millrace_serving.adapters.registry import MemoryRegistry
from millrace_serving.app import bootstrap, create_app
from millrace_serving.config import Settings
from millrace_serving.runtime import Runtime

from tests.support.models import FACTORY_FEATURES, build_model, instance

MODEL = "machine-failure"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    engine = make_engine(f"sqlite:///{tmp_path / 'dev.db'}")
    metadata.create_all(engine, tables=[online_rows])
    now = datetime.now(UTC)
    rows = [
        ("m-17", now, instance(0.9)),
        ("m-17", now - timedelta(hours=1), instance(0.1)),
        ("m-18", now, {"temperature_mean_10m": 1.0}),
    ]
    with engine.begin() as conn:
        for i, (entity, at, features) in enumerate(rows):
            conn.execute(
                online_rows.insert().values(
                    feature_set=f"fs-{i}",
                    entity_id=entity,
                    feature_set_version=1,
                    event_time=at,
                    features=features,
                    updated_at=at,
                )
            )
    store = MemoryStore()
    artifact = build_model(seed=1)
    store.put(artifact.key(MODEL, 1), artifact.data)
    runtime = bootstrap(
        Settings(models=MODEL, publish_predictions=False),
        store=store,
        registry=MemoryRegistry(),
        engine=engine,
    )
    yield runtime
    engine.dispose()


@pytest.fixture
async def client(runtime: Runtime) -> TestClient:
    target = build_model(seed=1).target(runtime.swapper.store, name=MODEL, version=1)
    await runtime.swapper.apply(target)
    return TestClient(create_app(runtime))  # no lifespan: Kafka is not needed here


def predict(client: TestClient, body: object, model: str = MODEL):  # type: ignore[no-untyped-def]
    return client.post(f"/v1/models/{model}/predict", json=body)


def test_instances_get_predictions_from_the_loaded_version(client: TestClient) -> None:
    response = predict(client, {"instances": [instance(0.2), instance(-3.0)]})
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["version"], body["alias"]) == (MODEL, 1, "production")
    assert len(body["predictions"]) == 2
    assert {"label", "probabilities"} <= body["predictions"][0].keys()


def test_a_missing_or_non_numeric_feature_is_named(client: TestClient) -> None:
    missing = instance()
    del missing["temperature_mean_10m"]
    response = predict(client, {"instances": [instance(), missing]})
    assert response.status_code == 422
    assert response.json()["field"] == "instances[1].temperature_mean_10m"
    response = predict(client, {"instances": [{**instance(), "speed_last": "fast"}]})
    assert response.json()["field"] == "instances[0].speed_last"


def test_malformed_bodies_are_422_naming_the_field(client: TestClient) -> None:
    assert predict(client, {"instances": "nope"}).json()["errors"][0]["field"] == "instances"
    assert predict(client, {"rows": []}).json()["errors"][0]["field"] == "rows"
    assert predict(client, {}).json()["field"] == "instances"
    both = predict(client, {"instances": [instance()], "entity_ids": ["m-17"]})
    assert both.status_code == 422 and both.json()["field"] == "entity_ids"


def test_unknown_model_or_alias_is_404(client: TestClient) -> None:
    assert predict(client, {"instances": [instance()]}, model="nope").status_code == 404
    staging = predict(client, {"instances": [instance()], "alias": "staging"})
    assert staging.status_code == 404


def test_entity_ids_use_the_newest_online_row_that_covers_the_model(client: TestClient) -> None:
    by_entity = predict(client, {"entity_ids": ["m-17"]}).json()["predictions"]
    explicit = predict(client, {"instances": [instance(0.9)]}).json()["predictions"]
    assert by_entity == explicit


def test_an_entity_without_covering_features_is_404_naming_it(client: TestClient) -> None:
    response = predict(client, {"entity_ids": ["m-17", "m-18"]})
    assert response.status_code == 404
    assert "m-18" in response.json()["message"]
    assert response.json()["field"] == "entity_ids[1]"


def test_loaded_models_are_listed(client: TestClient) -> None:
    [listed] = client.get("/v1/models").json()
    assert (listed["name"], listed["version"], listed["features"]) == (MODEL, 1, FACTORY_FEATURES)


def test_not_ready_before_start_up(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
    assert "millrace_predict_requests_total" in client.get("/metrics").text
