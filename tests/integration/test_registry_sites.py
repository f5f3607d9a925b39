"""Site groups on Postgres and the S3 protocol: one call writes every member's manifest."""

from __future__ import annotations

import httpx
import pytest
from millrace_common.contracts import SiteManifest
from millrace_common.objectstore import open_store

from tests.integration.test_registry import registration, registry_settings, registry_url

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
