"""Done-when 1: concurrent registrations and promotions against Postgres, the registry
running under uvicorn; version numbers never collide and ``production`` is always on
exactly one version, even for a reader polling during the race."""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from millrace_common.objectstore import ObjectStore

from tests.support.registry import registration

pytestmark = pytest.mark.integration


def test_twenty_concurrent_registrations_get_twenty_consecutive_versions(
    registry_url: str, registry_store: ObjectStore
) -> None:
    model = f"race-{secrets.token_hex(3)}"
    barrier = threading.Barrier(20)

    def register(i: int) -> int:
        barrier.wait(timeout=30)  # all twenty requests leave together
        response = httpx.post(
            f"{registry_url}/v1/models/{model}/versions",
            json=registration(f"req-{i}", 0.5, store=registry_store),
            timeout=60,
        )
        assert response.status_code == 201, response.text
        return int(response.json()["version"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        versions = list(pool.map(register, range(20)))
    assert sorted(versions) == list(range(1, 21))
    listed = httpx.get(f"{registry_url}/v1/models/{model}/versions", timeout=30).json()
    assert [v["version"] for v in listed] == list(range(1, 21))
    assert len({v["request_id"] for v in listed}) == 20


def test_racing_promotions_leave_exactly_one_production_at_every_instant(
    registry_url: str, registry_store: ObjectStore
) -> None:
    model = f"promo-{secrets.token_hex(3)}"
    for request_id in ("a", "b", "c"):
        created = httpx.post(
            f"{registry_url}/v1/models/{model}/versions",
            json=registration(request_id, 0.9, store=registry_store),
            timeout=30,
        )
        assert created.status_code == 201
    stop = threading.Event()
    observed: list[list[int]] = []

    def read_while_racing() -> None:
        with httpx.Client(base_url=registry_url, timeout=30) as client:
            while not stop.is_set():
                listed = client.get(f"/v1/models/{model}/versions").json()
                observed.append([v["version"] for v in listed if "production" in v["aliases"]])
                alias = client.get(f"/v1/models/{model}/aliases/production")
                assert alias.status_code == 200, alias.text

    def promote(version: int) -> int:
        with httpx.Client(base_url=registry_url, timeout=60) as client:
            for _ in range(10):
                moved = client.post(
                    f"/v1/models/{model}/aliases/production",
                    json={
                        "version": version,
                        "reason": f"race to v{version}",
                        "actor": f"racer-{version}",
                    },
                )
                assert moved.status_code == 200, moved.text
        return version

    reader = threading.Thread(target=read_while_racing)
    reader.start()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(promote, (2, 3)))
    finally:
        stop.set()
        reader.join(timeout=60)
    assert observed, "the reader never completed a read"
    assert all(len(holders) == 1 for holders in observed), [o for o in observed if len(o) != 1]

    final = httpx.get(f"{registry_url}/v1/models/{model}", timeout=30).json()["aliases"]
    assert final["production"] in (2, 3) and final["champion"] == final["production"]
    audit = httpx.get(f"{registry_url}/v1/models/{model}/audit", timeout=30).json()
    moves = [a for a in audit if a["alias"] == "production" and a["action"] == "alias_moved"]
    # every move names the version it replaced, so the audit chain has no gaps
    chain = sorted(moves, key=lambda a: a["id"])
    assert all(b["from_version"] == a["to_version"] for a, b in zip(chain, chain[1:], strict=False))
    assert chain[-1]["to_version"] == final["production"]
