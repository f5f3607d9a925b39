"""Done-when 5: every REST route answers unknown model, unknown version, bad alias name and
malformed body with a clear 404/409/422."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.support.registry import registration

MOVE = {"version": 1, "reason": "why"}
RUN = {"request_id": "r", "status": "running", "started_at": "2026-01-01T00:00:00Z"}

UNKNOWN_MODEL = [
    ("GET", "/v1/models/nope", None),
    ("PATCH", "/v1/models/nope", {"description": "d"}),
    ("GET", "/v1/models/nope/versions", None),
    ("GET", "/v1/models/nope/versions/1", None),
    ("PATCH", "/v1/models/nope/versions/1", {"description": "d"}),
    ("GET", "/v1/models/nope/versions/1/lineage", None),
    ("GET", "/v1/models/nope/aliases/production", None),
    ("POST", "/v1/models/nope/aliases/production", MOVE),
    ("DELETE", "/v1/models/nope/aliases/staging?reason=x", None),
    ("POST", "/v1/models/nope/rollback", {"reason": "x"}),
    ("GET", "/v1/models/nope/audit", None),
    ("GET", "/v1/models/nope/runs", None),
    ("GET", "/v1/models/nope/runs/a", None),
    ("GET", "/v1/models/nope/runs/compare?run=a&run=b", None),
    ("PUT", "/v1/sites/s1/deployments/nope", {"alias": "production"}),
    ("GET", "/v1/sites/nope", None),
    ("DELETE", "/v1/sites/s1/deployments/nope?reason=x", None),
]
UNKNOWN_VERSION = [
    ("GET", "/v1/models/m/versions/9", None),
    ("PATCH", "/v1/models/m/versions/9", {"description": "d"}),
    ("GET", "/v1/models/m/versions/9/lineage", None),
    ("POST", "/v1/models/m/aliases/staging", {"version": 9, "reason": "why"}),
    ("POST", "/v1/models/m/rollback", {"version": 9, "reason": "why"}),
    ("GET", "/v1/models/m/runs/zzz", None),
]
BAD_ALIAS = [
    ("GET", "/v1/models/m/aliases/Bad_Alias", None),
    ("POST", "/v1/models/m/aliases/Bad_Alias", MOVE),
    ("DELETE", "/v1/models/m/aliases/Bad_Alias?reason=x", None),
    ("PUT", "/v1/sites/s1/deployments/m", {"alias": "Bad_Alias"}),
    ("GET", "/v1/models?alias=Bad_Alias", None),
    ("GET", "/v1/models/m/versions?alias=Bad_Alias", None),
]
MALFORMED = [
    ("POST", "/v1/models/m/versions", {"request_id": "x"}, "artifact_uri"),
    ("POST", "/v1/models/bad%20name/versions", registration("r9", 0.5), "name"),
    ("PATCH", "/v1/models/m", {"tags": "not a map"}, "tags"),
    ("PATCH", "/v1/models/m", {}, "body"),
    ("PATCH", "/v1/models/m/versions/1", {"status": "rejected"}, "status"),
    ("POST", "/v1/models/m/aliases/staging", {"version": "one", "reason": "x"}, "version"),
    ("DELETE", "/v1/models/m/aliases/staging", None, "reason"),
    ("POST", "/v1/models/m/rollback", {"version": 1}, "reason"),
    ("PUT", "/v1/models/m/runs/a", {"status": "exploded"}, "request_id"),
    ("PUT", "/v1/models/m/runs/a", RUN | {"metrics": {"f1": "high"}}, "metrics.f1"),
    ("GET", "/v1/models/m/runs/compare?run=a", None, "run"),
    ("GET", "/v1/models/m/versions?metric=f1%20about%200.5", None, "metric"),
    ("GET", "/v1/models?limit=0", None, "limit"),
    ("GET", "/v1/models/m/audit?limit=-1", None, "limit"),
    ("PUT", "/v1/sites/s1/deployments/m", {"alias": "production", "extra": 1}, "extra"),
    ("PUT", "/v1/sites/s1/deployments/m", {"alias": "production", "reason": 5}, "reason"),
    ("DELETE", "/v1/sites/s1/deployments/m", None, "reason"),
    ("DELETE", "/v1/site-groups/g/deployments/m", None, "reason"),
    ("GET", "/v1/sites?limit=0", None, "limit"),
    ("GET", "/v1/models/m/versions/one", None, "version"),
]


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    assert client.post("/v1/models/m/versions", json=registration("r1", 0.8)).status_code == 201
    return client


def field_of(body: dict[str, object]) -> object:
    """The field the answer names (query parameters come as ``query.<name>``)."""
    errors = body.get("errors")
    found = errors[0]["field"] if isinstance(errors, list) else body.get("field")
    return str(found).removeprefix("query.").removeprefix("path.")


@pytest.mark.parametrize(("method", "path", "body"), UNKNOWN_MODEL)
def test_unknown_model_is_404(seeded: TestClient, method: str, path: str, body: object) -> None:
    response = seeded.request(method, path, json=body)
    assert response.status_code == 404, response.text
    assert "nope" in response.json()["message"]


@pytest.mark.parametrize(("method", "path", "body"), UNKNOWN_VERSION)
def test_unknown_version_is_404(seeded: TestClient, method: str, path: str, body: object) -> None:
    response = seeded.request(method, path, json=body)
    assert response.status_code == 404, response.text
    assert response.json()["message"].startswith("model 'm' has no")


@pytest.mark.parametrize(("method", "path", "body"), BAD_ALIAS)
def test_bad_alias_name_is_422_naming_alias(
    seeded: TestClient, method: str, path: str, body: object
) -> None:
    response = seeded.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert field_of(response.json()) == "alias"


@pytest.mark.parametrize(("method", "path", "body", "field"), MALFORMED)
def test_malformed_body_is_422_naming_the_field(
    seeded: TestClient, method: str, path: str, body: object, field: str
) -> None:
    response = seeded.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert str(field_of(response.json())).startswith(field), response.json()


def test_conflicts_are_409(seeded: TestClient) -> None:
    seeded.post(
        "/v1/models/m/versions",
        json=registration("r2", 0.9, status="rejected", rejection_reason="parity"),
    )
    assert (
        seeded.post("/v1/models/m/aliases/staging", json={"version": 2, "reason": "x"}).status_code
        == 409
    )
    assert seeded.patch("/v1/models/m/versions/2", json={"status": "ready"}).status_code == 409
    assert seeded.post("/v1/models/m/rollback", json={"reason": "x"}).status_code == 409
    assert seeded.delete("/v1/models/m/aliases/champion", params={"reason": "x"}).status_code == 409
