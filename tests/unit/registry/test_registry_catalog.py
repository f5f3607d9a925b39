"""Catalog routes on SQLite: search, updates, alias deletion, rollback, lineage, runs."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.support.registry import registration


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
    body = registration("r1", 0.8, lineage=lineage)
    client.post("/v1/models/m/versions", json=body)
    client.put("/v1/models/m/runs/run-1", json=run_report("r1", "succeeded", version=1))
    doc = client.get("/v1/models/m/versions/1/lineage").json()
    assert doc["train_request"]["requested_by"] == "cli"
    assert doc["feature_set"]["definition"] == {"features": []}
    assert doc["artifact"]["sha256"] == body["sha256"] and doc["seed"] == 7
    assert doc["run"]["run_id"] == "run-1"
    assert [a["alias"] for a in doc["alias_history"]] == ["production", "champion"]


def test_runs_are_recorded_listed_and_compared(client: TestClient) -> None:
    client.put("/v1/models/m/runs/a", json=run_report("r1", "running"))
    assert client.post("/v1/models/m/versions", json=registration("r1", 0.8)).status_code == 201
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


def finished_run(run_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "timings": {"fit": 0.5},
        "logs_uri": f"mem:///runs/m/{run_id}/run-log.json",
        "details": {"checks": {"passed": True}},
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:01:00Z",
    } | extra


def test_a_registration_finishes_the_run_it_carries(client: TestClient) -> None:
    client.put("/v1/models/m/runs/run-a", json=run_report("r1", "running"))
    created = client.post(
        "/v1/models/m/versions", json=registration("r1", 0.8, run=finished_run("run-a"))
    )
    assert created.status_code == 201, created.text
    run = client.get("/v1/models/m/runs/run-a").json()
    assert (run["status"], run["version"], run["request_id"]) == ("succeeded", 1, "r1")
    assert run["metrics"] == {"f1": 0.8, "accuracy": 0.9} and run["timings"] == {"fit": 0.5}
    assert run["logs_uri"].endswith("run-a/run-log.json") and run["finished_at"]

    # a run never reported as started is recorded too; a rejected version rejects its run
    rejected = registration(
        "r2",
        0.9,
        status="rejected",
        rejection_reason="ONNX output differs",
        run=finished_run("run-b"),
    )
    assert client.post("/v1/models/m/versions", json=rejected).status_code == 201
    run = client.get("/v1/models/m/runs/run-b").json()
    assert (run["status"], run["version"], run["failure_reason"]) == (
        "rejected",
        2,
        "ONNX output differs",
    )


def test_a_finished_run_stays_finished(client: TestClient) -> None:
    body = registration("r1", 0.8, run=finished_run("run-a"))
    client.post("/v1/models/m/versions", json=body)
    # the same registration again (a retry after a lost answer) changes nothing
    again = client.post("/v1/models/m/versions", json=body)
    assert again.status_code == 200 and again.json()["version"] == 1
    assert [r["run_id"] for r in client.get("/v1/models/m/runs").json()] == ["run-a"]
    for late in ("running", "failed"):
        answer = client.put("/v1/models/m/runs/run-a", json=run_report("r1", late))
        assert answer.status_code == 409 and answer.json()["field"] == "status"
        assert "already finished succeeded" in answer.json()["message"]
    assert client.get("/v1/models/m/runs/run-a").json()["status"] == "succeeded"
    # a second attempt at the same request ends in the version already registered
    client.post("/v1/models/m/versions", json=body | {"run": finished_run("run-b")})
    assert client.get("/v1/models/m/runs/run-b").json()["version"] == 1
    assert client.get("/v1/models/m/versions/1/lineage").json()["run"]["run_id"] == "run-a"


def test_a_pending_registration_cannot_carry_a_finished_run(client: TestClient) -> None:
    body = registration("r1", 0.8, status="pending", run=finished_run("run-a"))
    refused = client.post("/v1/models/m/versions", json=body)
    assert refused.status_code == 422 and refused.json()["field"] == "run"
    bad_run = registration("r1", 0.8, run=finished_run("run a", finished_at="soon"))
    fields = {
        e["field"] for e in client.post("/v1/models/m/versions", json=bad_run).json()["errors"]
    }
    assert fields == {"run.run_id", "run.finished_at"}
