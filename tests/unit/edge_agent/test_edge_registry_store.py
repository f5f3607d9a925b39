"""A site reads its manifest and models through the registry with its own key: it needs
no object-store key, and cannot read another site's manifest or a model it was not
given."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from millrace_common.contracts import SiteManifest
from millrace_common.errors import NotFound, Unauthorized
from millrace_common.objectstore import MemoryStore, key_of
from millrace_edge_agent.adapters.registry_store import RegistryStore
from millrace_registry.app import create_app

from tests.support.identity import Keys, key_file
from tests.support.registry import registration, registry_runtime


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return key_file(tmp_path)


@pytest.fixture
def registry(tmp_path: Path, keys: Keys) -> TestClient:
    store = MemoryStore()
    runtime = registry_runtime(f"sqlite:///{tmp_path}/registry.db", store=store, **keys.settings())
    client = TestClient(create_app(runtime))
    trainer, deployer = keys.headers("trainer"), keys.headers("deployer")
    for request_id in ("r1", "r2"):
        body = registration(request_id, 0.8, store=store)
        assert client.post("/v1/models/m/versions", json=body, headers=trainer).is_success
    body = registration("other", 0.8, store=store)
    assert client.post("/v1/models/other/versions", json=body, headers=trainer).is_success
    for site, model in (("s1", "m"), ("s2", "other")):
        assign = client.put(
            f"/v1/sites/{site}/deployments/{model}", json={"alias": "production"}, headers=deployer
        )
        assert assign.is_success, assign.text
    return client


def site_store(registry: TestClient, keys: Keys, site: str, *, as_role: str) -> RegistryStore:
    registry.headers.update(keys.headers(as_role))
    return RegistryStore("http://testserver", site=site, client=registry)


def test_a_site_reads_its_manifest_and_its_models_only(registry: TestClient, keys: Keys) -> None:
    store = site_store(registry, keys, "s1", as_role="site:s1")
    manifest, etag = store.get_if_changed("sites/s1/manifest.json", None) or (b"", "")
    assert b'"site":"s1"' in manifest.replace(b" ", b"") and etag
    assert store.get_if_changed("sites/s1/manifest.json", etag) is None  # 304: unchanged
    [target] = SiteManifest.model_validate_json(manifest).models
    model = store.get(key_of(target.artifact_uri))
    assert len(model) == target.size

    # another site's manifest: the guard refuses the credential
    with pytest.raises(Unauthorized):
        site_store(registry, keys, "s2", as_role="site:s1").get("sites/s2/manifest.json")
    # a model its manifest does not name, asked for under its own site: not there for it
    with pytest.raises(NotFound):
        store.get("models/m/other/model.onnx")
    with pytest.raises(NotFound):
        store.get("sites/s2/manifest.json")
