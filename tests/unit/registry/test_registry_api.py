"""The registry's REST API on SQLite with an in-memory store (no broker, no network)."""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from fastapi.testclient import TestClient
from millrace_common.contracts import ModelPublished, SiteManifest
from millrace_common.objectstore import MemoryStore
from millrace_registry.adapters.tables import outbox
from millrace_registry.app import Runtime, create_app

from tests.support.fakes import FakeProducer
from tests.support.registry import registration
from tests.support.waiting import until


def outbox_events(runtime: Runtime) -> list[ModelPublished]:
    with runtime.engine.connect() as conn:
        payloads = conn.execute(sa.select(outbox.c.payload).order_by(outbox.c.id)).scalars()
        return [ModelPublished.model_validate_json(p) for p in payloads]


def test_first_version_is_promoted_and_announced(client: TestClient, runtime: Runtime) -> None:
    response = client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    assert response.status_code == 201
    body = response.json()
    assert (body["version"], body["status"], body["promoted"]) == (1, "ready", True)
    assert body["aliases"] == ["champion", "production"]
    target = client.get("/v1/models/m/aliases/production").json()
    assert target["version"] == 1 and target["schema"]["features"] == ["a", "b"]
    assert {(e.alias, e.version) for e in outbox_events(runtime)} == {
        ("production", 1),
        ("champion", 1),
    }


def test_worse_version_stays_challenger_with_audited_reason(client: TestClient) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.88))
    second = client.post(
        "/v1/models/m/versions", json=registration("r2", 0.85, champion=0.88, champion_version=1)
    ).json()
    assert (second["version"], second["promoted"]) == (2, False)
    assert second["aliases"] == ["challenger"]
    assert client.get("/v1/models/m/aliases/production").json()["version"] == 1
    latest = client.get("/v1/models/m/audit").json()[0]
    assert latest["action"] == "not_promoted" and latest["to_version"] == 2
    assert latest["reason"] == (
        "not promoted: f1 0.8500 does not beat champion v1 0.8800 by margin 0.0000"
    )


def test_better_version_takes_production(client: TestClient) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.88))
    third = client.post(
        "/v1/models/m/versions", json=registration("r3", 0.91, champion=0.88, champion_version=1)
    ).json()
    assert third["promoted"] and "beats champion v1" in third["reason"]
    model = client.get("/v1/models/m").json()
    assert model["aliases"] == {"champion": 2, "production": 2}
    assert model["latest_version"] == 2


def test_resent_registration_returns_the_same_version(client: TestClient, runtime: Runtime) -> None:
    first = client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    again = client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    assert again.status_code == 200
    assert again.json()["version"] == first.json()["version"] == 1
    assert len(client.get("/v1/models/m/versions").json()) == 1
    assert len(outbox_events(runtime)) == 2
    found = client.get("/v1/models/m/versions", params={"request_id": "r1"}).json()
    assert [v["version"] for v in found] == [1]


def test_rejected_version_gets_no_alias_and_cannot_be_promoted(client: TestClient) -> None:
    rejected = client.post(
        "/v1/models/m/versions",
        json=registration("r1", 0.99, status="rejected", rejection_reason="ONNX labels differ"),
    ).json()
    assert rejected["status"] == "rejected" and rejected["aliases"] == []
    assert client.get("/v1/models/m/aliases/production").status_code == 404
    move = client.post(
        "/v1/models/m/aliases/production", json={"version": 1, "reason": "try anyway"}
    )
    assert move.status_code == 409


def test_manual_move_is_audited_and_requires_a_reason(client: TestClient, runtime: Runtime) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    client.post(
        "/v1/models/m/versions", json=registration("r2", 0.9, champion=0.8, champion_version=1)
    )
    missing = client.post("/v1/models/m/aliases/production", json={"version": 1})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "reason"
    moved = client.post(
        "/v1/models/m/aliases/production",
        json={"version": 1, "reason": "rollback: alarms", "actor": "ana"},
    )
    assert moved.status_code == 200
    assert (moved.json()["version"], moved.json()["previous_version"]) == (1, 2)
    entry = client.get("/v1/models/m/audit").json()[1]
    assert (
        entry["alias"],
        entry["from_version"],
        entry["to_version"],
        entry["actor"],
        entry["reason"],
    ) == ("production", 2, 1, "ana", "rollback: alarms")
    assert outbox_events(runtime)[-1].reason == "rollback: alarms"


def test_unknown_things_are_404_and_bad_input_422_naming_the_field(client: TestClient) -> None:
    assert client.get("/v1/models/nope").status_code == 404
    assert client.get("/v1/models/nope/versions/1").status_code == 404
    client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    assert client.get("/v1/models/m/versions/7").status_code == 404
    assert client.get("/v1/models/m/aliases/staging").status_code == 404
    bad_alias = client.post("/v1/models/m/aliases/Not_OK", json={"version": 1, "reason": "x"})
    assert bad_alias.status_code == 422 and bad_alias.json()["field"] == "alias"
    body = registration("r2", 0.8)
    del body["sha256"]
    missing = client.post("/v1/models/m/versions", json=body)
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "sha256"
    no_metric = client.post(
        "/v1/models/m/versions", json=registration("r3", 0.8) | {"metrics": {"accuracy": 1.0}}
    )
    assert no_metric.status_code == 422 and no_metric.json()["field"] == "metrics.f1"


def test_site_assignment_writes_its_manifest(client: TestClient, store: MemoryStore) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    assert (
        client.put("/v1/sites/plant-7/deployments/nope", json={"alias": "production"}).status_code
        == 404
    )
    site = client.put("/v1/sites/plant-7/deployments/m", json={"alias": "production"}).json()
    assert site["models"][0]["version"] == 1
    manifest = SiteManifest.model_validate_json(store.get("sites/plant-7/manifest.json"))
    assert [(t.name, t.alias, t.version) for t in manifest.models] == [("m", "production", 1)]
    assert client.get("/v1/sites/plant-7").json()["deployments"][0]["alias"] == "production"
    assert client.get("/v1/sites/unknown").status_code == 404


async def test_relay_rewrites_manifests_before_publishing(
    runtime: Runtime, store: MemoryStore, producer: FakeProducer
) -> None:
    """With the lifespan running, an alias move reaches the site manifest and the topic."""
    app = create_app(runtime)
    with TestClient(app) as client:
        client.post("/v1/models/m/versions", json=registration("r1", 0.8))
        client.put("/v1/sites/plant-7/deployments/m", json={"alias": "production"})
        client.post(
            "/v1/models/m/versions", json=registration("r2", 0.9, champion=0.8, champion_version=1)
        )
        await until(lambda: len(producer.sent) >= 4, timeout=30, what="4 relayed events")
        manifest = SiteManifest.model_validate_json(store.get("sites/plant-7/manifest.json"))
        assert manifest.models[0].version == 2
        published = [
            (topic, key, orjson.loads(value)["version"]) for topic, key, value in producer.sent
        ]
        assert ("model-published", "m:production", 2) in published
        assert client.get("/readyz").json()["ready"] is True
