"""Pinned versions and aliases, the admin routes, roles and request limits, as a client
sees them (v1 JSON and Open Inference Protocol routes alike)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.identity import Keys, key_file
from tests.support.models import FACTORY_FEATURES, instance
from tests.support.serving import MODEL, app_of, promote, serving_runtime, v2_body

PREDICT = f"/v1/models/{MODEL}/predict"


async def started(tmp_path: Path, **settings: object) -> TestClient:
    runtime = serving_runtime(tmp_path, **settings)
    await promote(runtime, 1)
    await promote(runtime, 2, alias="staging")
    return TestClient(app_of(runtime))


@pytest.fixture
async def client(tmp_path: Path) -> TestClient:
    return await started(tmp_path, max_batch=8, max_body_bytes=20_000)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return key_file(tmp_path)


@pytest.fixture
async def secured(tmp_path: Path, keys: Keys) -> TestClient:
    return await started(tmp_path, **keys.settings())


def test_a_request_names_an_alias_or_a_pinned_version(client: TestClient) -> None:
    assert client.post(PREDICT, json={"instances": [instance()]}).json()["version"] == 1
    staging = client.post(PREDICT, json={"instances": [instance()], "alias": "staging"})
    assert (staging.json()["version"], staging.json()["alias"]) == (2, "staging")
    pinned = client.post(PREDICT, json={"instances": [instance()], "version": 2})
    assert pinned.json()["version"] == 2 and pinned.headers["x-millrace-model-version"] == "2"
    assert client.post(PREDICT, json={"instances": [instance()], "version": 3}).status_code == 404
    v2 = client.post(f"/v2/models/{MODEL}/versions/2/infer", json=v2_body())
    assert v2.json()["model_version"] == "2"


def test_admin_loads_unloads_and_reloads_versions(client: TestClient) -> None:
    admin = f"/v1/admin/models/{MODEL}"
    loaded = client.post(f"{admin}/load", json={"version": 3})
    assert loaded.status_code == 200 and loaded.json()["slot"] == "v3"
    assert (
        client.post(PREDICT, json={"instances": [instance()], "version": 3}).json()["version"] == 3
    )
    assert client.post(f"{admin}/load", json={"version": 9}).status_code == 404
    both = client.post(f"{admin}/load", json={"version": 3, "alias": "staging"})
    assert both.status_code == 422 and both.json()["field"] == "version"
    assert client.post(f"{admin}/unload", json={"version": 3}).status_code == 200
    assert client.post(PREDICT, json={"instances": [instance()], "version": 3}).status_code == 404
    assert client.post(f"{admin}/unload", json={"version": 3}).status_code == 404
    reloaded = client.post(f"{admin}/reload").json()
    assert reloaded["aliases"]["production"] == "unchanged"


def test_limits_on_batch_body_and_inputs(client: TestClient) -> None:
    too_many = client.post(PREDICT, json={"instances": [instance()] * 9})
    assert too_many.status_code == 422 and too_many.json()["field"] == "instances"
    v2 = client.post(f"/v2/models/{MODEL}/infer", json=v2_body(9))
    assert v2.status_code == 422 and "maximum batch of 8" in v2.json()["error"]
    huge = client.post(
        PREDICT, content=b"{" + b" " * 30_000 + b"}", headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413 and huge.json()["error"] == "too_large"
    chunked = client.post(  # no Content-Length: counted as it arrives
        PREDICT,
        content=iter([b"{", b" " * 30_000, b"}"]),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413 and chunked.json()["error"] == "too_large"
    small = json.dumps({"instances": [instance()]}).encode()
    streamed = client.post(
        PREDICT,
        content=iter([small[:10], small[10:]]),
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 200 and len(streamed.json()["predictions"]) == 1


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"datatype": "BYTES"}, "inputs[0].datatype"),
        ({"shape": [1, 3]}, "inputs[0].shape"),
        ({"data": [["hot"] * 7]}, "inputs[0].data"),
        ({"name": "speed"}, "inputs.speed"),
    ],
)
def test_v2_bad_tensors_are_422_naming_the_field(
    client: TestClient, change: dict[str, object], named: str
) -> None:
    body = v2_body()
    body["inputs"][0].update(change)  # type: ignore[index]
    response = client.post(f"/v2/models/{MODEL}/infer", json=body)
    assert response.status_code == 422
    assert named in response.json()["error"]


def test_v2_one_tensor_per_feature_and_a_missing_one(client: TestClient) -> None:
    columns = [
        {"name": f, "shape": [2], "datatype": "FP32", "data": [0.5, 0.5]} for f in FACTORY_FEATURES
    ]
    ok = client.post(f"/v2/models/{MODEL}/infer", json={"inputs": columns})
    whole = client.post(f"/v2/models/{MODEL}/infer", json=v2_body(2))
    assert ok.status_code == 200 and ok.json()["outputs"] == whole.json()["outputs"]
    missing = client.post(f"/v2/models/{MODEL}/infer", json={"inputs": columns[1:]})
    assert missing.status_code == 422
    assert missing.json() == {
        "error": f"inputs.{FACTORY_FEATURES[0]}: missing feature '{FACTORY_FEATURES[0]}'"
    }


def test_roles_decide_who_predicts_and_who_loads_models(secured: TestClient, keys: Keys) -> None:
    body = {"instances": [instance()]}
    assert secured.post(PREDICT, json=body).status_code == 401
    assert secured.post(PREDICT, json=body, headers={"x-api-key": "guess"}).status_code == 401
    producer = keys.headers("producer")
    assert secured.post(PREDICT, json=body, headers=producer).status_code == 200
    assert secured.post(f"/v2/models/{MODEL}/infer", json=v2_body()).status_code == 401
    v2 = secured.post(f"/v2/models/{MODEL}/infer", json=v2_body(), headers=producer)
    assert v2.status_code == 200
    reload = f"/v1/admin/models/{MODEL}/reload"
    forbidden = secured.post(reload, headers=producer)
    assert forbidden.status_code == 403 and "deployer" in forbidden.json()["message"]
    assert secured.post(reload, headers={"x-api-key": keys.tokens["deployer"]}).status_code == 200
    site = secured.post(PREDICT, json=body, headers=keys.headers("site:s1"))
    assert site.status_code == 403
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/v2/health/live").status_code == 200


def test_a_revoked_key_is_refused_once_the_check_is_forgotten(tmp_path: Path) -> None:
    keys = key_file(tmp_path)
    runtime = serving_runtime(tmp_path, auth_cache_seconds=0, **keys.settings())
    client = TestClient(app_of(runtime))
    assert client.get("/v1/models", headers=keys.headers("scientist")).status_code == 200
    kept = [line for line in keys.file.read_text().splitlines() if " scientist " not in line]
    keys.file.write_text("\n".join(kept) + "\n")
    assert client.get("/v1/models", headers=keys.headers("scientist")).status_code == 401


async def test_a_slow_scoring_call_times_out(tmp_path: Path) -> None:
    runtime = serving_runtime(tmp_path, request_timeout=0.05, batching=f"{MODEL}:500ms:64")
    await promote(runtime, 1)
    client = TestClient(app_of(runtime))
    response = client.post(PREDICT, json={"instances": [instance()]})
    assert response.status_code == 504 and response.json()["error"] == "timeout"
