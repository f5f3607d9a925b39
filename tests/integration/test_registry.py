"""The registry against Postgres, the S3 protocol and the broker."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from millrace_common.contracts import SiteManifest
from millrace_common.objectstore import ObjectStore, open_store

from tests.support.kafka import published_events
from tests.support.registry import SCHEMA_DOC, registration

pytestmark = pytest.mark.integration


async def test_registration_promotes_publishes_and_rewrites_site_manifests(
    registry_url: str, broker: str, object_store_url: str, registry_store: ObjectStore
) -> None:
    model = f"m-{secrets.token_hex(3)}"
    store = registry_store
    async with httpx.AsyncClient(base_url=registry_url, timeout=30) as client:
        first = await client.post(
            f"/v1/models/{model}/versions", json=registration("r1", 0.88, store=store)
        )
        assert first.status_code == 201 and first.json()["promoted"] is True
        site = await client.put(
            f"/v1/sites/plant-9/deployments/{model}", json={"alias": "production"}
        )
        assert site.status_code == 200
        better = await client.post(
            f"/v1/models/{model}/versions",
            json=registration("r2", 0.91, champion=0.88, champion_version=1, store=store),
        )
        assert better.json()["reason"] == ("f1 0.9100 beats champion v1 0.8800 by margin 0.0000")
        worse = await client.post(
            f"/v1/models/{model}/versions",
            json=registration("r3", 0.85, champion=0.91, champion_version=2, store=store),
        )
        assert (worse.json()["version"], worse.json()["promoted"]) == (3, False)
        production = (await client.get(f"/v1/models/{model}/aliases/production")).json()
        audit = (await client.get(f"/v1/models/{model}/audit")).json()
    assert production["version"] == 2 and production["schema"] == SCHEMA_DOC
    assert audit[0]["action"] == "not_promoted" and audit[0]["alias"] == "challenger"
    assert audit[0]["reason"] == (
        "not promoted: f1 0.8500 does not beat champion v2 0.9100 by margin 0.0000"
    )

    events = await published_events(broker, model=model, count=5)
    by_key: dict[str, list[int]] = {}
    for key, event, _ in events:  # ordered per key (= per partition), not across keys
        by_key.setdefault(key, []).append(event.version)
    assert by_key == {
        f"{model}:production": [1, 2],
        f"{model}:champion": [1, 2],
        f"{model}:challenger": [3],
    }
    assert all(ce_id == event.event_id for _, event, ce_id in events)

    manifest = SiteManifest.model_validate_json(
        open_store(object_store_url).get("sites/plant-9/manifest.json")
    )
    assert [(t.name, t.version, t.alias) for t in manifest.models] == [(model, 2, "production")]


async def test_unknown_models_404_and_bad_requests_422(
    registry_url: str, registry_store: ObjectStore
) -> None:
    async with httpx.AsyncClient(base_url=registry_url, timeout=30) as client:
        await client.post(
            "/v1/models/m/versions", json=registration("r1", 0.8, store=registry_store)
        )
        assert (await client.get("/v1/models/unknown")).status_code == 404
        assert (await client.get("/v1/models/m/versions/42")).status_code == 404
        assert (await client.get("/v1/models/unknown/aliases/production")).status_code == 404
        bad_alias = await client.post(
            "/v1/models/m/aliases/UPPER", json={"version": 1, "reason": "x"}
        )
        assert bad_alias.status_code == 422 and bad_alias.json()["field"] == "alias"
        no_reason = await client.post(
            "/v1/models/m/aliases/staging", json={"version": 1, "reason": ""}
        )
        assert no_reason.status_code == 422
        assert no_reason.json()["errors"][0]["field"] == "reason"
        bad_size = await client.post(
            "/v1/models/m/versions",
            json=registration("r2", 0.8, store=registry_store) | {"size": -1},
        )
        assert bad_size.status_code == 422 and bad_size.json()["errors"][0]["field"] == "size"
        staged = await client.post(
            "/v1/models/m/aliases/staging", json={"version": 1, "reason": "QA", "actor": "ops"}
        )
        assert staged.status_code == 200
        assert (await client.get("/v1/models/m")).json()["aliases"]["staging"] == 1


def test_concurrent_registrations_get_distinct_consecutive_versions(
    registry_url: str, registry_store: ObjectStore
) -> None:
    def register(i: int) -> tuple[int, int]:
        # two threads send each request id: the re-send must get the same version
        response = httpx.post(
            f"{registry_url}/v1/models/busy/versions",
            json=registration(f"req-{i // 2}", 0.5 + i / 100, store=registry_store),
            timeout=60,
        )
        assert response.status_code in (200, 201), response.text
        return i // 2, response.json()["version"]

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(register, range(20)))
    by_request: dict[int, set[int]] = {}
    for request, version in results:
        by_request.setdefault(request, set()).add(version)
    assert all(len(versions) == 1 for versions in by_request.values())
    assert sorted(v for (v,) in by_request.values()) == list(range(1, 11))
    listed = httpx.get(f"{registry_url}/v1/models/busy/versions", timeout=30).json()
    assert [v["version"] for v in listed] == list(range(1, 11))
