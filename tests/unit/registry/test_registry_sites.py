"""Site groups on SQLite: a group's alias reaches every member's manifest, membership changes
rewrite the sites that join or leave, and a site shows what it should run beside what it
last reported."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from millrace_common.contracts import SiteManifest
from millrace_common.db import make_engine, migrate
from millrace_common.objectstore import MemoryStore
from millrace_registry.adapters.repository import site_lock_key
from millrace_registry.adapters.tables import SCHEMA
from millrace_registry.app import MIGRATIONS, Runtime, create_app

from tests.support.registry import race_manifest_writers, registration
from tests.support.waiting import until


def manifest(store: MemoryStore, site: str) -> list[tuple[str, str, int]]:
    found = SiteManifest.model_validate_json(store.get(f"sites/{site}/manifest.json"))
    return [(t.name, t.alias, t.version) for t in found.models]


def test_a_group_deployment_writes_every_members_manifest(
    client: TestClient, store: MemoryStore
) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    created = client.put(
        "/v1/site-groups/north",
        json={"sites": ["s1", "s2", "s3"], "description": "northern plants"},
    )
    assert created.status_code == 201 and created.json()["sites"] == ["s1", "s2", "s3"]
    assigned = client.put("/v1/site-groups/north/deployments/m", json={"alias": "production"})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["manifests_written"] == ["s1", "s2", "s3"]
    assert assigned.json()["deployments"][0] | {"updated_at": None} == {
        "model": "m",
        "alias": "production",
        "updated_at": None,
    }
    for site in ("s1", "s2", "s3"):
        assert manifest(store, site) == [("m", "production", 1)]
    site = client.get("/v1/sites/s2").json()
    assert site["groups"] == ["north"] and site["deployments"][0]["via"] == "group:north"
    assert site["models"][0]["version"] == 1
    assert [g["group"] for g in client.get("/v1/site-groups").json()] == ["north"]


def test_a_direct_assignment_wins_and_leaving_a_group_empties_the_manifest(
    client: TestClient, store: MemoryStore
) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    client.post("/v1/models/m/aliases/staging", json={"version": 1, "reason": "QA"})
    client.put("/v1/site-groups/north", json={"sites": ["s1", "s2"]})
    client.put("/v1/site-groups/north/deployments/m", json={"alias": "production"})
    client.put("/v1/sites/s1/deployments/m", json={"alias": "staging"})
    s1 = client.get("/v1/sites/s1").json()
    assert [(d["alias"], d["via"]) for d in s1["deployments"]] == [("staging", "site")]

    moved = client.put("/v1/site-groups/north", json={"sites": ["s1", "s4"]})
    assert moved.status_code == 200 and moved.json()["sites"] == ["s1", "s4"]
    assert manifest(store, "s2") == []  # s2 left: its manifest no longer names m
    assert manifest(store, "s4") == [("m", "production", 1)]
    assert manifest(store, "s1") == [("m", "staging", 1)]
    assert client.get("/v1/sites/s2").status_code == 404  # nothing left to show


async def test_a_promotion_reaches_every_member_through_the_relay(
    runtime: Runtime, store: MemoryStore
) -> None:
    with TestClient(create_app(runtime)) as client:
        client.post("/v1/models/m/versions", json=registration("r1", 0.8))
        client.put("/v1/site-groups/fleet", json={"sites": ["a", "b"]})
        client.put("/v1/site-groups/fleet/deployments/m", json={"alias": "production"})
        client.post(
            "/v1/models/m/versions", json=registration("r2", 0.9, champion=0.8, champion_version=1)
        )
        await until(
            lambda: manifest(store, "a") == manifest(store, "b") == [("m", "production", 2)],
            timeout=30,
            what="v2 in both members' manifests",
        )


def test_a_site_shows_what_it_should_run_and_what_it_reported(client: TestClient) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    client.put("/v1/site-groups/north", json={"sites": ["s1"]})
    client.put("/v1/site-groups/north/deployments/m", json={"alias": "production"})
    status = client.get("/v1/sites/s1").json()
    assert status["reported"] is None
    assert status["status"] == [
        {"model": "m", "alias": "production", "should_run": 1, "reports": None, "in_sync": False}
    ]
    beat = client.post(
        "/v1/sites/s1/heartbeats",
        json={
            "site": "s1",
            "models": [{"name": "m", "alias": "production", "version": 1}],
            "queue_depth": 3,
            "sent_at": datetime.now(UTC).isoformat(),
        },
    )
    assert beat.status_code == 201, beat.text
    status = client.get("/v1/sites/s1").json()
    assert status["reported"]["queue_depth"] == 3 and status["reported"]["received_at"]
    assert status["status"][0] | {"reports": 1, "in_sync": True} == status["status"][0]
    client.post(
        "/v1/models/m/versions", json=registration("r2", 0.9, champion=0.8, champion_version=1)
    )
    behind = client.get("/v1/sites/s1").json()["status"][0]
    assert (behind["should_run"], behind["reports"], behind["in_sync"]) == (2, 1, False)


def test_group_routes_answer_404_and_422_naming_the_field(client: TestClient) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    no_group = client.put("/v1/site-groups/nowhere/deployments/m", json={"alias": "production"})
    assert no_group.status_code == 404 and no_group.json()["field"] == "group"
    assert "no site group 'nowhere'" in no_group.json()["message"]
    assert client.get("/v1/site-groups/nowhere").status_code == 404
    client.put("/v1/site-groups/north", json={"sites": ["s1"]})
    no_model = client.put("/v1/site-groups/north/deployments/nope", json={"alias": "production"})
    assert no_model.status_code == 404 and no_model.json()["field"] == "model"
    bad_alias = client.put("/v1/site-groups/north/deployments/m", json={"alias": "UPPER"})
    assert bad_alias.status_code == 422 and bad_alias.json()["field"] == "alias"
    bad_site = client.put("/v1/site-groups/north", json={"sites": ["ok", "not a site!"]})
    assert bad_site.status_code == 422 and bad_site.json()["field"] == "sites.1"
    bad_group = client.put("/v1/site-groups/-x", json={"sites": []})
    assert bad_group.status_code == 422 and bad_group.json()["field"] == "group"
    malformed = client.put("/v1/site-groups/north", json={"sites": "s1"})
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["field"] == "sites"
    extra = client.put(
        "/v1/site-groups/north/deployments/m", json={"alias": "production", "colour": "red"}
    )
    assert extra.status_code == 422 and extra.json()["errors"][0]["field"] == "colour"
    assert client.get("/v1/site-groups/north").json()["deployments"] == []


def test_removing_a_deployment_is_audited_and_rewrites_the_manifests(
    client: TestClient, store: MemoryStore
) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    client.post("/v1/models/m/aliases/staging", json={"version": 1, "reason": "QA"})
    client.put("/v1/site-groups/north", json={"sites": ["s1", "s2"]})
    client.put(
        "/v1/site-groups/north/deployments/m",
        json={"alias": "production", "reason": "roll out", "actor": "ana"},
    )
    client.put("/v1/sites/s1/deployments/m", json={"alias": "staging", "reason": "pilot"})

    # s1's own assignment goes: the group's shows through again
    removed = client.delete(
        "/v1/sites/s1/deployments/m", params={"reason": "pilot over", "actor": "ana"}
    )
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"site_id": "s1", "model": "m", "removed_alias": "staging"}
    assert manifest(store, "s1") == [("m", "production", 1)]
    # the group's goes: every member's manifest stops naming m
    dropped = client.delete("/v1/site-groups/north/deployments/m", params={"reason": "retired"})
    assert dropped.status_code == 200, dropped.text
    assert (dropped.json()["removed_alias"], dropped.json()["deployments"]) == ("production", [])
    assert dropped.json()["manifests_written"] == ["s1", "s2"]
    assert manifest(store, "s1") == [] and manifest(store, "s2") == []
    assert client.get("/v1/sites/s1").json()["deployments"] == []  # still a member of north

    audit = [
        (a["action"], a["alias"], a["actor"], a["reason"])
        for a in client.get("/v1/models/m/audit").json()
    ][:4]
    assert audit == [
        ("group_unassigned", "production", "api", "group north: retired"),
        ("site_unassigned", "staging", "ana", "site s1: pilot over"),
        ("site_assigned", "staging", "api", "site s1: pilot"),
        ("group_assigned", "production", "ana", "group north: roll out"),
    ]


def test_sites_are_listed_with_what_they_run(client: TestClient) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    client.put("/v1/site-groups/north", json={"sites": ["s2", "s3"]})
    client.put("/v1/sites/s1/deployments/m", json={"alias": "production"})
    listed = client.get("/v1/sites", params={"limit": 2, "offset": 1})
    assert listed.status_code == 200 and listed.headers["X-Total-Count"] == "3"
    assert [(s["site_id"], s["groups"]) for s in listed.json()] == [
        ("s2", ["north"]),
        ("s3", ["north"]),
    ]
    first = client.get("/v1/sites").json()[0]
    assert (first["site_id"], first["status"][0]["should_run"]) == ("s1", 1)


def test_deployment_routes_answer_404_409_and_422_naming_the_field(client: TestClient) -> None:
    client.post("/v1/models/m/versions", json=registration("r1", 0.8))
    client.put("/v1/site-groups/north", json={"sites": ["s1"]})
    client.put("/v1/site-groups/north/deployments/m", json={"alias": "production"})

    def answer(method: str, url: str, **kwargs: Any) -> tuple[int, str, str]:
        response = client.request(method, url, **kwargs)
        body = response.json()
        errors = body.get("errors") or [{"field": body.get("field")}]
        return response.status_code, str(errors[0]["field"]).removeprefix("query."), body["message"]

    # an alias that points nowhere deploys nothing: refused, for a site and for a group
    for url in ("/v1/sites/s9/deployments/m", "/v1/site-groups/north/deployments/m"):
        code, field, message = answer("PUT", url, json={"alias": "prodution"})
        assert (code, field) == (404, "alias") and "no alias 'prodution'" in message
    code, field, _ = answer("PUT", "/v1/sites/s9/deployments/nope", json={"alias": "production"})
    assert (code, field) == (404, "model")
    assert client.get("/v1/sites/s9").status_code == 404  # nothing was recorded for s9

    reason = {"reason": "x"}
    code, field, message = answer("DELETE", "/v1/sites/s1/deployments/m", params=reason)
    assert (code, field) == (409, "site_id") and "through site group 'north'" in message
    code, field, message = answer("DELETE", "/v1/sites/s9/deployments/m", params=reason)
    assert (code, field) == (404, "model") and "no deployment of 'm'" in message
    code, field, message = answer("DELETE", "/v1/site-groups/west/deployments/m", params=reason)
    assert (code, field) == (404, "group") and "no site group 'west'" in message
    code, field, _ = answer("DELETE", "/v1/site-groups/north/deployments/nope", params=reason)
    assert (code, field) == (404, "model")
    for url in ("/v1/sites/s1/deployments/m", "/v1/site-groups/north/deployments/m"):
        assert answer("DELETE", url)[:2] == (422, "reason")
        assert answer("DELETE", url, params={"reason": " "})[:2] == (422, "reason")
    assert client.get("/v1/site-groups/north").json()["deployments"][0]["model"] == "m"


def test_racing_manifest_writers_on_sqlite_take_turns(tmp_path: Path) -> None:
    """Dev mode (SQLite, one process): the relay's rewrite after an alias move waits for a
    writer parked after reading the older state, and the manifest left is the newest."""
    url = f"sqlite:///{tmp_path / 'millrace.db'}"
    engines = (make_engine(url), make_engine(url))
    migrate(engines[0], schema=SCHEMA, versions=MIGRATIONS)
    asked: list[float] = []

    def b_still_unwritten_after_a_second() -> bool:
        # a thread lock cannot be asked who waits for it; first asked right after B starts
        asked.append(time.monotonic())
        return asked[-1] - asked[0] > 1.0

    try:
        manifest, b_finished_first = race_manifest_writers(
            engines=engines,
            store=MemoryStore(),
            second_blocked=b_still_unwritten_after_a_second,
        )
    finally:
        for engine in engines:
            engine.dispose()
    assert [(t.name, t.alias, t.version) for t in manifest.models] == [("m", "production", 2)]
    assert not b_finished_first


def test_site_lock_keys_are_stable_signed_64_bit_integers() -> None:
    """Every registry process must map a site to the same advisory lock."""
    key = site_lock_key("plant-1")
    assert key == site_lock_key("plant-1") != site_lock_key("plant-2")
    assert -(2**63) <= key < 2**63
    assert key == int.from_bytes(
        hashlib.blake2b(b"millrace.site:plant-1", digest_size=8).digest(), "big", signed=True
    )
