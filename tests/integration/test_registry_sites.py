"""Site groups on Postgres and the S3 protocol: one call writes every member's manifest."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
from millrace_common.contracts import SiteManifest
from millrace_common.objectstore import open_store
from millrace_common.scoring import ModelSlots
from millrace_edge_agent.adapters.cache import ModelCache
from millrace_edge_agent.sync import Syncer

from tests.integration.test_registry import registration, registry_settings, registry_url
from tests.support_models import build_model

pytestmark = pytest.mark.integration
__all__ = ["registry_settings", "registry_url"]  # fixtures reused


def test_a_group_deployment_reaches_every_member_on_s3(
    registry_url: str, object_store_url: str
) -> None:
    sites = [f"plant-{i}" for i in range(5)]
    with httpx.Client(base_url=registry_url, timeout=30) as client:
        assert client.post("/v1/models/m/versions", json=registration("r1", 0.8)).status_code == 201
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
    artifact = build_model(seed=3)
    key = f"models/m/{secrets.token_hex(4)}/model.onnx"
    store.put(key, artifact.data)
    body = registration("r1", 0.8) | {
        "artifact_uri": store.uri(key),
        "sha256": artifact.sha256,
        "size": len(artifact.data),
        "schema": artifact.schema.model_dump(mode="json", by_alias=True),
    }
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
