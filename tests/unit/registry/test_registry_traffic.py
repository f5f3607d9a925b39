"""The registry's traffic-policy routes on SQLite: stored, audited, read back; bad bodies
are 422s naming the field; unknown models are 404s."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.registry import registration

TRAFFIC = "/v1/models/m/traffic"


@pytest.fixture
def client(client: TestClient) -> TestClient:
    """The registry with versions 1 and 2 of ``m``."""
    assert client.post("/v1/models/m/versions", json=registration("r1", 0.8)).status_code == 201
    assert client.post("/v1/models/m/versions", json=registration("r2", 0.7)).status_code == 201
    return client


def test_a_model_without_a_policy_reads_as_none(client: TestClient) -> None:
    body = client.get(TRAFFIC).json()
    assert body["mode"] == "none"
    assert body["challenger_alias"] == "challenger"
    assert body["challenger_version"] == 2  # r2 did not beat r1: it became the challenger


def test_a_canary_is_stored_and_audited(client: TestClient) -> None:
    response = client.put(
        TRAFFIC,
        json={"mode": "canary", "percent": 25, "reason": "try v2 on a quarter", "actor": "ana"},
    )
    assert response.status_code == 200, response.text
    assert client.get(TRAFFIC).json() | {"updated_at": None} == {
        "model": "m",
        "mode": "canary",
        "challenger_alias": "challenger",
        "percent": 25.0,
        "key_field": None,
        "reason": "try v2 on a quarter",
        "actor": "ana",
        "updated_at": None,
        "challenger_version": 2,
    }
    entry = client.get("/v1/models/m/audit").json()[0]
    assert entry["action"] == "traffic_canary"
    assert entry["alias"] == "challenger"
    assert entry["actor"] == "ana"
    assert entry["reason"] == "canary 25% to 'challenger': try v2 on a quarter"


def test_a_new_policy_replaces_the_old_one(client: TestClient) -> None:
    client.put(
        TRAFFIC,
        json={"mode": "sticky", "percent": 10, "key_field": "entity_id", "reason": "by machine"},
    )
    client.put(TRAFFIC, json={"mode": "shadow", "reason": "mirror only"})
    body = client.get(TRAFFIC).json()
    assert (body["mode"], body["percent"], body["key_field"]) == ("shadow", None, None)
    client.put(TRAFFIC, json={"mode": "none", "reason": "done"})
    assert client.get(TRAFFIC).json()["mode"] == "none"
    actions = [e["action"] for e in client.get("/v1/models/m/audit").json()[:3]]
    assert actions == ["traffic_none", "traffic_shadow", "traffic_sticky"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "canary", "reason": "x"}, "percent"),
        ({"mode": "canary", "percent": 101, "reason": "x"}, "percent"),
        ({"mode": "shadow", "percent": 5, "reason": "x"}, "percent"),
        ({"mode": "split", "reason": "x"}, "mode"),
        ({"mode": "canary", "percent": 5}, "reason"),
        ({"mode": "canary", "percent": 5, "reason": "  "}, "reason"),
        (
            {"mode": "canary", "percent": 5, "reason": "x", "challenger_alias": "Bad Alias"},
            "challenger_alias",
        ),
        ({"mode": "sticky", "percent": 5, "reason": "x", "key_field": "user"}, "key_field"),
        ({"mode": "none", "reason": "x", "key_field": "key"}, "key_field"),
        ({"mode": "none", "reason": "x", "weight": 3}, "weight"),
    ],
)
def test_a_bad_body_is_a_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.put(TRAFFIC, json=body)
    assert response.status_code == 422
    assert field in response.text
    assert client.get(TRAFFIC).json()["mode"] == "none"  # nothing stored


def test_an_unknown_model_is_a_404(client: TestClient) -> None:
    assert client.get("/v1/models/nope/traffic").status_code == 404
    response = client.put("/v1/models/nope/traffic", json={"mode": "none", "reason": "x"})
    assert response.status_code == 404
    assert "nope" in response.json()["message"]
