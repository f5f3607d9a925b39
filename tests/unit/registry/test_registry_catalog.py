"""Catalog routes on SQLite: search, updates, alias deletion, rollback, lineage, runs."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.unit.registry.test_registry_api import client, producer, registration, runtime, store

__all__ = ["client", "producer", "runtime", "store"]  # fixtures reused


def three_versions(client: TestClient) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.80, tags={"team": "ops"}))
    client.post(
        "/v1/models/m/versions", json=registration("r2", 0.90, champion=0.80, champion_version=1)
    )
    client.post(
        "/v1/models/m/versions", json=registration("r3", 0.95, champion=0.90, champion_version=2)
    )


def run_report(request_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "status": status,
        "started_at": "2026-01-01T00:00:00Z",
    } | extra


def test_models_and_versions_are_searchable_and_paginated(client: TestClient) -> None:
    three_versions(client)
    client.post("/v1/models/other/versions", json=registration("o1", 0.5))
    assert (
        client.patch(
            "/v1/models/m", json={"tags": {"domain": "factory"}, "description": "failure risk"}
        ).status_code
        == 200
    )
    by_tag = client.get("/v1/models", params={"tag": "domain=factory"})
    assert [m["name"] for m in by_tag.json()] == ["m"]
    assert by_tag.json()[0]["description"] == "failure risk"
    assert [m["name"] for m in client.get("/v1/models", params={"name": "OTH"}).json()] == ["other"]
    paged = client.get("/v1/models", params={"limit": 1, "offset": 1})
    assert [m["name"] for m in paged.json()] == ["other"]
    assert paged.headers["x-total-count"] == "2"
    good = client.get("/v1/models/m/versions", params={"metric": "f1>=0.9"}).json()
    assert [v["version"] for v in good] == [2, 3]
    assert [
        v["version"]
        for v in client.get("/v1/models/m/versions", params={"alias": "production"}).json()
    ] == [3]
    assert [
        v["version"] for v in client.get("/v1/models/m/versions", params={"tag": "team"}).json()
    ] == [1]


def test_versions_are_updated_and_archived_with_an_audit(client: TestClient) -> None:
    three_versions(client)
    updated = client.patch(
        "/v1/models/m/versions/1",
        json={
            "description": "baseline",
            "tags": {"note": "first"},
            "status": "archived",
            "reason": "superseded",
            "actor": "ana",
        },
    )
    assert updated.status_code == 200
    assert (updated.json()["status"], updated.json()["description"], updated.json()["tags"]) == (
        "archived",
        "baseline",
        {"note": "first"},
    )
    entry = client.get("/v1/models/m/audit").json()[0]
    assert (entry["action"], entry["to_version"], entry["actor"], entry["reason"]) == (
        "version_updated",
        1,
        "ana",
        "superseded",
    )
    holds = client.patch("/v1/models/m/versions/3", json={"status": "archived"})
    assert holds.status_code == 409 and "production" in holds.json()["message"]
    archived = client.get("/v1/models/m/versions", params={"status": "archived"}).json()
    assert [v["version"] for v in archived] == [1]


def test_rollback_is_one_audited_call(client: TestClient) -> None:
    three_versions(client)
    back = client.post("/v1/models/m/rollback", json={"reason": "alarms", "actor": "ana"})
    assert back.status_code == 200
    assert (back.json()["version"], back.json()["previous_version"]) == (2, 3)
    assert client.get("/v1/models/m").json()["aliases"]["production"] == 2
    entry = [a for a in client.get("/v1/models/m/audit").json() if a["alias"] == "production"][0]
    assert (entry["from_version"], entry["to_version"], entry["reason"], entry["actor"]) == (
        3,
        2,
        "rollback: alarms",
        "ana",
    )
    named = client.post("/v1/models/m/rollback", json={"version": 1, "reason": "older"})
    assert named.json()["version"] == 1
    forward = client.post("/v1/models/m/rollback", json={"version": 3, "reason": "x"})
    assert forward.status_code == 409 and forward.json()["field"] == "version"


def test_aliases_are_deleted_with_a_reason_but_production_only_moves(client: TestClient) -> None:
    three_versions(client)
    client.post("/v1/models/m/aliases/staging", json={"version": 2, "reason": "QA"})
    deleted = client.delete(
        "/v1/models/m/aliases/staging", params={"reason": "QA done", "actor": "ana"}
    )
    assert deleted.status_code == 200 and deleted.json()["deleted_version"] == 2
    assert "staging" not in client.get("/v1/models/m").json()["aliases"]
    assert client.get("/v1/models/m/audit").json()[0]["action"] == "alias_deleted"
    assert (
        client.delete("/v1/models/m/aliases/production", params={"reason": "x"}).status_code == 409
    )


def test_lineage_is_one_document(client: TestClient) -> None:
    lineage = {
        "train_request": {"request_id": "r1", "requested_by": "cli"},
        "feature_set": {"name": "fs", "version": 1, "definition": {"features": []}},
        "snapshot": {"uri": "s3://b/d.parquet", "sha256": "cd" * 32},
        "model_spec": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "seed": 7,
        "environment": {"python": "3.11"},
    }
    client.post("/v1/models/m/versions", json=registration("r1", 0.8, lineage=lineage))
    client.put("/v1/models/m/runs/run-1", json=run_report("r1", "succeeded", version=1))
    doc = client.get("/v1/models/m/versions/1/lineage").json()
    assert doc["train_request"]["requested_by"] == "cli"
    assert doc["feature_set"]["definition"] == {"features": []}
    assert doc["artifact"]["sha256"] == "ab" * 32 and doc["seed"] == 7
    assert doc["run"]["run_id"] == "run-1"
    assert [a["alias"] for a in doc["alias_history"]] == ["production", "champion"]


def test_runs_are_recorded_listed_and_compared(client: TestClient) -> None:
    client.put("/v1/models/m/runs/a", json=run_report("r1", "running"))
    done = client.put(
        "/v1/models/m/runs/a",
        json=run_report(
            "r1",
            "succeeded",
            version=1,
            params={"C": 1.0},
            metrics={"f1": 0.8},
            timings={"fit": 0.5},
            logs_uri="mem:///runs/a.json",
        ),
    )
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    client.put(
        "/v1/models/m/runs/b",
        json=run_report("r2", "failed", params={"C": 2.0}, failure_reason="cannot convert"),
    )
    listed = client.get("/v1/models/m/runs").json()
    assert [(r["run_id"], r["status"]) for r in listed] == [("b", "failed"), ("a", "succeeded")]
    failed = client.get("/v1/models/m/runs", params={"status": "failed"}).json()
    assert failed[0]["failure_reason"] == "cannot convert"
    compared = client.get("/v1/models/m/runs/compare", params={"run": ["a", "b"]}).json()
    assert compared["params"] == {"C": [1.0, 2.0]}
    assert compared["metrics"] == {"f1": [0.8, None]}
    assert [r["status"] for r in compared["runs"]] == ["succeeded", "failed"]
