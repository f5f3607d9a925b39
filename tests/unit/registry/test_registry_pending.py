"""Pending versions (MLflow's PENDING_REGISTRATION): registered over REST before their checks
ran (an external pipeline records them later; the trainer runs its checks first and
registers ready or rejected). They hold no alias, so nothing serves, deploys or rolls back
to them, until the checks are recorded; then they are rejected with the reason, or ready
and judged by the promotion rule they were registered with."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient
from millrace_common.contracts import SiteManifest
from millrace_common.objectstore import MemoryStore
from millrace_registry.adapters.tables import outbox
from millrace_registry.app import Runtime

from tests.support.registry import registration


def pending(request_id: str, f1: float, **extra: object) -> dict[str, object]:
    return registration(request_id, f1, **extra) | {"status": "pending"}


def published(runtime: Runtime) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(outbox)) or 0)


def test_a_pending_version_holds_no_alias_until_its_checks_pass(
    client: TestClient, runtime: Runtime
) -> None:
    created = client.post("/v1/models/m/versions", json=pending("r1", 0.8))
    assert created.status_code == 201, created.text
    doc = created.json()
    assert (doc["status"], doc["aliases"], doc["promoted"]) == ("pending", [], False)
    assert doc["reason"] == "pending: its checks are not recorded yet"
    assert client.post("/v1/models/m/versions", json=pending("r1", 0.8)).json()["version"] == 1
    assert client.get("/v1/models/m/aliases/production").status_code == 404
    forced = client.post("/v1/models/m/aliases/staging", json={"version": 1, "reason": "x"})
    assert forced.status_code == 409 and "pending" in forced.json()["message"]
    assert client.patch("/v1/models/m/versions/1", json={"status": "archived"}).status_code == 409
    assert [
        v["version"]
        for v in client.get("/v1/models/m/versions", params={"status": "pending"}).json()
    ] == [1]
    assert client.get("/v1/models/m/audit").json()[0]["action"] == "registered_pending"
    assert published(runtime) == 0

    checked = client.post(
        "/v1/models/m/versions/1/checks",
        json={"passed": True, "details": {"onnx_parity": "ok"}, "actor": "checker"},
    )
    assert checked.status_code == 200, checked.text
    doc = checked.json()
    assert (doc["status"], doc["aliases"], doc["promoted"]) == (
        "ready",
        ["champion", "production"],
        True,
    )
    assert doc["lineage"]["checks"] == {"onnx_parity": "ok", "passed": True}
    assert published(runtime) == 2  # production and champion moves, in the outbox
    again = client.post("/v1/models/m/versions/1/checks", json={"passed": True})
    assert again.status_code == 409 and again.json()["field"] == "status"


def test_checks_apply_the_rule_against_production_at_that_time(client: TestClient) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.80))
    client.post(
        "/v1/models/m/versions", json=pending("r2", 0.90, champion=0.80, champion_version=1)
    )
    client.post(
        "/v1/models/m/versions", json=pending("r3", 0.95, champion=0.80, champion_version=1)
    )
    v2 = client.post("/v1/models/m/versions/2/checks", json={"passed": True}).json()
    assert v2["aliases"] == ["champion", "production"]
    assert v2["reason"] == "f1 0.9000 beats champion v1 0.8000 by margin 0.0000"
    # v3 was evaluated against v1, but v2 holds production now: not comparable, no move
    v3 = client.post("/v1/models/m/versions/3/checks", json={"passed": True}).json()
    assert (v3["status"], v3["promoted"], v3["aliases"]) == ("ready", False, ["challenger"])
    assert "champion changed since evaluation" in v3["reason"]


def test_failed_checks_reject_with_the_reason(client: TestClient, runtime: Runtime) -> None:
    client.post("/v1/models/m/versions", json=pending("r1", 0.8))
    no_reason = client.post("/v1/models/m/versions/1/checks", json={"passed": False})
    assert no_reason.status_code == 422 and no_reason.json()["field"] == "reason"
    rejected = client.post(
        "/v1/models/m/versions/1/checks",
        json={"passed": False, "reason": "ONNX output differs by 0.2 on 14 rows"},
    ).json()
    assert (rejected["status"], rejected["aliases"], rejected["rejection_reason"]) == (
        "rejected",
        [],
        "ONNX output differs by 0.2 on 14 rows",
    )
    assert rejected["lineage"]["checks"]["passed"] is False
    assert client.get("/v1/models/m/audit").json()[0]["action"] == "rejected"
    assert published(runtime) == 0


def test_checks_routes_answer_404_and_422(client: TestClient) -> None:
    client.post("/v1/models/m/versions", json=pending("r1", 0.8))
    assert (
        client.post("/v1/models/nope/versions/1/checks", json={"passed": True}).status_code == 404
    )
    missing = client.post("/v1/models/m/versions/9/checks", json={"passed": True})
    assert missing.status_code == 404 and "no version 9" in missing.json()["message"]
    malformed = client.post("/v1/models/m/versions/1/checks", json={"ok": True})
    assert malformed.status_code == 422
    assert {e["field"] for e in malformed.json()["errors"]} == {"passed", "ok"}
    bad_status = client.post(
        "/v1/models/m/versions", json=registration("r2", 0.8) | {"status": "archived"}
    )
    assert bad_status.status_code == 422 and bad_status.json()["errors"][0]["field"] == "status"


def test_nothing_rolls_back_or_deploys_to_a_pending_version(
    client: TestClient, store: MemoryStore
) -> None:
    client.post("/v1/models/m/versions", json=pending("r1", 0.9))
    client.post("/v1/models/m/versions", json=registration("r2", 0.8))
    assert client.get("/v1/models/m").json()["aliases"]["production"] == 2
    back = client.post("/v1/models/m/rollback", json={"version": 1, "reason": "x"})
    assert back.status_code == 409 and "v1 is pending" in back.json()["message"]
    client.put("/v1/sites/s1/deployments/m", json={"alias": "production"})
    manifest = SiteManifest.model_validate_json(store.get("sites/s1/manifest.json"))
    assert [t.version for t in manifest.models] == [2]
    ready = client.get("/v1/models/m/versions", params={"status": "ready"}).json()
    assert [v["version"] for v in ready] == [2]
