"""Site groups on Postgres and the S3 protocol: one call writes every member's manifest."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from millrace_common.contracts import SiteManifest
from millrace_common.db import make_engine, migrate
from millrace_common.objectstore import open_store
from millrace_common.scoring import ModelSlots
from millrace_edge_agent.adapters.cache import ModelCache
from millrace_edge_agent.sync import Syncer
from millrace_registry.adapters.tables import SCHEMA
from millrace_registry.app import MIGRATIONS

from tests.support.cli import cli_json, run_cli
from tests.support.models import build_model
from tests.support.registry import race_manifest_writers, registration

pytestmark = pytest.mark.integration


def test_a_group_deployment_reaches_every_member_on_s3(
    registry_url: str, object_store_url: str
) -> None:
    sites = [f"plant-{i}" for i in range(5)]
    with httpx.Client(base_url=registry_url, timeout=30) as client:
        registered = registration("r1", 0.8, store=open_store(object_store_url))
        assert client.post("/v1/models/m/versions", json=registered).status_code == 201
        assert client.put("/v1/site-groups/east", json={"sites": sites}).status_code == 201
        assigned = client.put("/v1/site-groups/east/deployments/m", json={"alias": "production"})
        assert assigned.status_code == 200 and assigned.json()["manifests_written"] == sites
        missing = client.put("/v1/site-groups/west/deployments/m", json={"alias": "production"})
        assert missing.status_code == 404
        view = client.get("/v1/sites/plant-3").json()
    store = open_store(object_store_url)
    for site in sites:
        manifest = SiteManifest.model_validate_json(store.get(f"sites/{site}/manifest.json"))
        assert [(t.name, t.version) for t in manifest.models] == [("m", 1)]
    assert view["groups"] == ["east"] and view["status"][0]["should_run"] == 1


def test_a_removed_deployment_leaves_the_agent_on_its_last_known_good_model(
    registry_url: str, object_store_url: str, tmp_path: Path
) -> None:
    """The registry drops the model from the manifests on S3; an agent that read them keeps
    serving the model it verified (Greengrass-like), and no longer follows the alias."""
    store = open_store(object_store_url)
    target = build_model(seed=3).upload(store, name="m", version=1)
    body = registration("r1", 0.8, target=target)
    agent = Syncer(site="plant-1", store=store, cache=ModelCache(tmp_path), slots=ModelSlots())
    with httpx.Client(base_url=registry_url, timeout=30) as client:
        assert client.post("/v1/models/m/versions", json=body).status_code == 201
        client.put("/v1/site-groups/east", json={"sites": ["plant-1", "plant-2"]})
        client.put("/v1/site-groups/east/deployments/m", json={"alias": "production"})
        assert agent.sync_once() and agent.slots.get("m").version == 1

        removed = client.delete("/v1/site-groups/east/deployments/m", params={"reason": "retired"})
        assert removed.status_code == 200, removed.text
        again = client.delete("/v1/site-groups/east/deployments/m", params={"reason": "retired"})
        assert again.status_code == 404 and again.json()["field"] == "model"
    for site in ("plant-1", "plant-2"):
        manifest = SiteManifest.model_validate_json(store.get(f"sites/{site}/manifest.json"))
        assert manifest.models == []
    assert agent.sync_once() is True and agent.listed == set()
    assert agent.slots.get("m").version == 1  # still answering with what it had


def test_sites_are_driven_from_the_cli(registry_url: str, object_store_url: str) -> None:
    with httpx.Client(base_url=registry_url, timeout=30) as client:
        registered = registration("r1", 0.8, store=open_store(object_store_url))
        assert client.post("/v1/models/m/versions", json=registered).status_code == 201
        client.put("/v1/site-groups/east", json={"sites": ["plant-1", "plant-2"]})
    reg = ("--registry", registry_url)
    code, out = run_cli(
        "sites",
        "assign",
        "m",
        "--alias",
        "production",
        "--group",
        "east",
        "--reason",
        "roll out",
        *reg,
    )
    assert code == 0 and "manifests written for 2 sites: plant-1, plant-2" in out, out
    code, out = run_cli(
        "sites",
        "assign",
        "m",
        "--alias",
        "production",
        "--site",
        "plant-9",
        "--reason",
        "pilot",
        *reg,
    )
    assert code == 0 and "site plant-9 follows m@production → v1" in out, out

    code, out = run_cli("sites", "list", *reg)
    assert code == 0 and all(site in out for site in ("plant-1", "plant-2", "plant-9")), out
    code, out = run_cli("sites", "list", "--json", *reg)
    assert code == 0 and [s["site_id"] for s in json.loads(out)] == [
        "plant-1",
        "plant-2",
        "plant-9",
    ]
    code, out = run_cli("sites", "show", "plant-1", *reg)
    assert code == 0 and "group:east" in out and "v1" in out, out
    shown = cli_json("sites", "show", "plant-1", *reg)
    assert shown["status"] == [
        {"model": "m", "alias": "production", "should_run": 1, "reports": None, "in_sync": False}
    ]

    # clear one-line errors, exit 1: unknown model, alias, site; a site that follows via a group
    for args, cause in (
        (("assign", "nope", "--alias", "production", "--site", "s"), "no model 'nope'"),
        (("assign", "m", "--alias", "prodution", "--site", "s"), "has no alias 'prodution'"),
        (("assign", "m", "--alias", "production"), "name one target: --site SITE or --group"),
        (("show", "nowhere"), "HTTP 404: no site 'nowhere'"),
        (("unassign", "m", "--site", "plant-1"), "HTTP 409: site 'plant-1' follows 'm' through"),
        (("unassign", "m", "--group", "west"), "HTTP 404: no site group 'west'"),
    ):
        needs_reason = args[0] in ("assign", "unassign")
        code, out = run_cli("sites", *args, *(("--reason", "x") if needs_reason else ()), *reg)
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert code == 1 and len(errors) == 1 and cause in errors[0], out

    code, out = run_cli("sites", "unassign", "m", "--group", "east", "--reason", "retired", *reg)
    assert code == 0 and "group east no longer follows m@production" in out, out
    removed = cli_json("sites", "unassign", "m", "--site", "plant-9", "--reason", "done", *reg)
    assert removed == {"site_id": "plant-9", "model": "m", "removed_alias": "production"}
    store = open_store(object_store_url)
    for site in ("plant-1", "plant-2", "plant-9"):
        assert (
            SiteManifest.model_validate_json(store.get(f"sites/{site}/manifest.json")).models == []
        )


def test_racing_manifest_writers_leave_the_newest_state_on_s3(
    database_url: str, object_store_url: str
) -> None:
    """A writer that read the site before an alias move parks before its put; the relay's
    rewrite after the move, on another engine (another registry process), must not be
    overwritten by the parked, stale one. B waits for the site's advisory lock instead."""
    engines = (make_engine(database_url), make_engine(database_url))
    migrate(engines[0], schema=SCHEMA, versions=MIGRATIONS)
    watcher = make_engine(database_url)

    def waits_for_a_site_lock() -> bool:
        with watcher.connect() as conn:
            waiting = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                )
            ).scalar_one()
        return bool(waiting)

    try:
        manifest, b_finished_first = race_manifest_writers(
            engines=engines,
            store=open_store(object_store_url),
            second_blocked=waits_for_a_site_lock,
        )
    finally:
        for engine in (*engines, watcher):
            engine.dispose()
    assert [(t.name, t.alias, t.version) for t in manifest.models] == [("m", "production", 2)]
    assert not b_finished_first  # the relay's rewrite waited for the parked writer
