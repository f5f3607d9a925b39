"""What enters the catalog is what it claims to be: a version's artifact is an object of
the registry's own store with the claimed size and sha256 (never a path on the host, never
another bucket), a run names a version that exists, and numbers too large for a database
column are 422s that name the field, not 500s."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from millrace_cli.processes import free_port
from millrace_common.objectstore import MemoryStore, open_store, sha256_hex
from millrace_registry.app import create_app

from tests.support.registry import registration, registry_runtime

TOO_BIG = 2**63  # one past the largest BIGINT
ARTIFACT = b"an onnx model, as far as the registry cares"


def uploaded(store: MemoryStore, request_id: str) -> dict[str, object]:
    key = f"models/m/{request_id}/model.onnx"
    store.put(key, ARTIFACT)
    return {"artifact_uri": store.uri(key), "sha256": sha256_hex(ARTIFACT), "size": len(ARTIFACT)}


def refused(client: TestClient, body: dict[str, object]) -> tuple[str, str]:
    answer = client.post("/v1/models/m/versions", json=body)
    assert answer.status_code == 422, answer.text
    return answer.json()["field"], answer.json()["message"]


def test_an_artifact_uploaded_to_the_store_as_claimed_is_registered(
    client: TestClient, store: MemoryStore
) -> None:
    body = registration("r1", 0.8) | uploaded(store, "r1")
    assert client.post("/v1/models/m/versions", json=body).status_code == 201


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "s3://someone-elses-bucket/models/m/r1/model.onnx",
        "mem:///models/m/../../etc/passwd",
        "https://example.com/model.onnx",
    ],
)
def test_an_artifact_outside_the_store_is_refused(
    client: TestClient, store: MemoryStore, uri: str
) -> None:
    body = registration("r1", 0.8) | uploaded(store, "r1") | {"artifact_uri": uri}
    field, message = refused(client, body)
    assert field == "artifact_uri" and "is not in the registry's store" in message
    assert client.get("/v1/models/m/versions").status_code == 404  # nothing was registered


def test_an_artifact_never_uploaded_is_refused(client: TestClient, store: MemoryStore) -> None:
    body = registration("r1", 0.8) | uploaded(store, "r1")
    body["artifact_uri"] = store.uri("models/m/never/model.onnx")
    field, message = refused(client, body)
    assert field == "artifact_uri" and "upload it first" in message


def test_a_size_or_digest_other_than_the_objects_is_refused(
    client: TestClient, store: MemoryStore
) -> None:
    body = registration("r1", 0.8) | uploaded(store, "r1")
    assert refused(client, body | {"size": len(ARTIFACT) + 1}) == (
        "size",
        f"the artifact has {len(ARTIFACT)} bytes, not {len(ARTIFACT) + 1}",
    )
    field, message = refused(client, body | {"sha256": "ab" * 32})
    assert field == "sha256" and sha256_hex(ARTIFACT) in message


def test_a_run_naming_a_version_that_does_not_exist_is_refused(client: TestClient) -> None:
    report = {
        "request_id": "r1",
        "status": "succeeded",
        "version": 7,
        "started_at": "2026-01-01T00:00:00Z",
    }
    answer = client.put("/v1/models/m/runs/run-1", json=report)
    assert answer.status_code == 422 and answer.json()["field"] == "version", answer.text
    assert client.get("/v1/models/m/runs/run-1").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", f"/v1/models/m/versions/{TOO_BIG}", None, "path.version"),
        ("GET", "/v1/models/m/versions/2423165721964449366016", None, "path.version"),
        ("PATCH", f"/v1/models/m/versions/{TOO_BIG}", {"description": "x"}, "path.version"),
        ("GET", f"/v1/models/m/versions/{TOO_BIG}/lineage", None, "path.version"),
        ("POST", "/v1/models/m/aliases/challenger", {"version": TOO_BIG, "reason": "x"}, "version"),
        ("POST", "/v1/models/m/rollback", {"version": TOO_BIG, "reason": "x"}, "version"),
    ],
)
def test_numbers_too_large_for_a_column_are_422_naming_the_field(
    client: TestClient, method: str, path: str, body: dict[str, object] | None, field: str
) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    answer = client.request(method, path, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == field


def test_a_registration_with_a_size_too_large_for_a_column_is_422(client: TestClient) -> None:
    answer = client.post("/v1/models/m/versions", json=registration("r1", 0.8) | {"size": TOO_BIG})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "size"


def test_a_store_that_cannot_be_reached_is_a_503_to_retry(tmp_path: Path) -> None:
    away = open_store(f"s3://models?endpoint=http://127.0.0.1:{free_port()}", create_bucket=False)
    runtime = registry_runtime(f"sqlite:///{tmp_path}/millrace.db", store=away)
    body = registration("r1", 0.8) | {"artifact_uri": away.uri("models/m/r1/model.onnx")}
    # as a client sees it: the answer, not the exception the test client would re-raise
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        answer = client.post("/v1/models/m/versions", json=body)
    runtime.engine.dispose()
    assert answer.status_code == 503, answer.text
    assert answer.json()["message"] == "the object store is unreachable; retry shortly"
    assert answer.headers["Retry-After"] == "2"


def test_a_name_with_a_trailing_newline_is_no_name(client: TestClient) -> None:
    # `$` matches before a final newline: the rule is a full match
    answer = client.post("/v1/models/m%0A/versions", json=registration("r1", 0.8))
    assert answer.status_code == 422 and answer.json()["field"] == "name", answer.text
