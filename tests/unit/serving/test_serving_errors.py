"""One error body per path, whoever answers: ``{"error": code, "message", "field"?}`` on
/v1 and the admin routes, the Open Inference Protocol's ``{"error": "..."}`` on /v2 (for
unknown routes, wrong methods, unparseable bodies and the access guard's refusals too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.identity import Keys, key_file
from tests.support.models import instance
from tests.support.serving import MODEL, app_of, promote, serving_runtime, v2_body

INFER = f"/v2/models/{MODEL}/infer"
PREDICT = f"/v1/models/{MODEL}/predict"
JSON = {"content-type": "application/json"}


@pytest.fixture
async def client(tmp_path: Path) -> TestClient:
    runtime = serving_runtime(tmp_path, max_body_bytes=20_000)
    await promote(runtime, 1)
    return TestClient(app_of(runtime))


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return key_file(tmp_path)


@pytest.fixture
async def secured(tmp_path: Path, keys: Keys) -> TestClient:
    runtime = serving_runtime(tmp_path, **keys.settings())
    await promote(runtime, 1)
    return TestClient(app_of(runtime))


def v2_error(answer: object, status: int) -> str:
    assert answer.status_code == status, answer.text  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    return str(body["error"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("post", "/v2/models/nope/infer", v2_body(), 404, "'nope'"),
        ("post", f"/v2/models/{MODEL}/versions/x/infer", v2_body(), 404, "version 'x'"),
        ("get", "/v2/models/nope", None, 404, "'nope'"),
        ("get", "/v2/models/nope/ready", None, 404, "'nope'"),
        ("get", f"/v2/models/{MODEL}/nothing", None, 404, "no route"),
        ("get", INFER, None, 405, "GET is not allowed"),
        ("post", INFER, b"{not json", 422, "not a JSON inference request"),
        ("post", INFER, {"inputs": []}, 422, "inputs"),
    ],
)
def test_every_v2_error_is_the_open_inference_protocols(
    client: TestClient, method: str, path: str, body: object, status: int, says: str
) -> None:
    content = body if isinstance(body, bytes) else None
    payload = None if isinstance(body, bytes) else body
    answer = client.request(method, path, content=content, json=payload, headers=JSON)
    assert says in v2_error(answer, status)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/v1/nothing-here", 404, "not_found"),
        ("get", PREDICT, 405, "method_not_allowed"),
        ("post", "/v1/admin/models/m/load", 422, "invalid_input"),
    ],
)
def test_every_v1_error_has_the_one_shape(
    client: TestClient, method: str, path: str, status: int, code: str
) -> None:
    answer = client.request(method, path, content=b"{not json", headers=JSON)
    assert answer.status_code == status
    assert answer.json()["error"] == code and answer.json()["message"]


def test_the_guard_answers_in_the_body_of_the_path(secured: TestClient, keys: Keys) -> None:
    v1 = secured.post(PREDICT, json={"instances": [instance()]})
    assert v1.status_code == 401 and v1.json()["error"] == "unauthorized"
    assert "credentials are required" in v1.json()["message"]
    assert "WWW-Authenticate" in v1.headers
    assert "credentials are required" in v2_error(secured.post(INFER, json=v2_body()), 401)
    a_site = keys.headers("site:s1")
    assert "needs one of the roles" in v2_error(
        secured.post(INFER, json=v2_body(), headers=a_site), 403
    )
    assert "needs one of the roles" in v2_error(
        secured.get(f"/v2/models/{MODEL}", headers=a_site), 403
    )


def test_a_body_over_the_limit_is_refused_in_the_body_of_the_path(client: TestClient) -> None:
    huge = b"{" + b" " * 30_000 + b"}"
    v1 = client.post(PREDICT, content=huge, headers=JSON)
    assert v1.status_code == 413 and v1.json()["error"] == "too_large"
    assert "limit" in v2_error(client.post(INFER, content=huge, headers=JSON), 413)
    chunked = client.post(INFER, content=iter([b"{", b" " * 30_000, b"}"]), headers=JSON)
    assert "limit" in v2_error(chunked, 413)
