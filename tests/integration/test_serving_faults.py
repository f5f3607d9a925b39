"""Serving rides out its dependencies and tells the truth, against real processes (a
registry on Postgres, serving, the broker, S3 through moto):

- the registry down and serving restarted: every prediction answers from serving's
  on-disk cache (zero 404s), readiness says so; the registry back: serving is in step
  again within seconds and follows the next promotion;
- production moved to a version whose artifact is corrupt, then to one whose file is
  missing: the old model keeps answering, readiness detail and
  ``millrace_serving_target_mismatch`` name the divergence and why.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from millrace_cli.processes import ProcessSpec, Supervisor, free_port, script, wait_until
from millrace_common.objectstore import ObjectStore, open_store
from prometheus_client.parser import text_string_to_metric_families

from tests.support.models import build_model, instance

pytestmark = [pytest.mark.integration, pytest.mark.faults]
MODEL = "machine-failure"


class Platform:
    """A registry and a serving process on fixed ports, each stopped and started again
    at will; serving keeps its cache in one folder across restarts."""

    def __init__(self, supervisor: Supervisor, env: dict[str, str], cache: Path) -> None:
        self.supervisor = supervisor
        self.env = env
        self.store: ObjectStore = open_store(env["MILLRACE_OBJECT_STORE"])
        self.registry_port, self.serving_port = free_port(), free_port()
        self.registry = f"http://127.0.0.1:{self.registry_port}"
        self.serving = f"http://127.0.0.1:{self.serving_port}"
        self.cache = cache

    def start_registry(self) -> None:
        self.supervisor.start(
            ProcessSpec(
                name="registry",
                argv=[script("millrace-registry")],
                env=self.env | {"MILLRACE_REGISTRY_PORT": str(self.registry_port)},
                ready_url=f"{self.registry}/readyz",
            ),
            timeout=120,
        )

    def start_serving(self, *, ready: str = "/readyz") -> None:
        self.supervisor.start(
            ProcessSpec(
                name="serving",
                argv=[script("millrace-serving")],
                env=self.env
                | {
                    "MILLRACE_SERVING_PORT": str(self.serving_port),
                    "MILLRACE_SERVING_REGISTRY_URL": self.registry,
                    "MILLRACE_SERVING_MODELS": MODEL,
                    "MILLRACE_SERVING_PUBLISH_PREDICTIONS": "false",
                    "MILLRACE_SERVING_CACHE_DIR": str(self.cache),
                },
                ready_url=f"{self.serving}{ready}",
            ),
            timeout=120,
        )

    def register(self, version: int, *, damaged: bytes | None = None, lost: bool = False) -> None:
        """Register the seed-``version`` model (the registry checks its artifact), then
        replace its bytes with ``damaged`` (a corrupt artifact) or, if ``lost``, delete
        it (a missing one): what a store can do to an object after it was checked."""
        artifact = build_model(seed=version)
        key = artifact.key(MODEL, version)
        self.store.put(key, artifact.data)
        body = {
            "request_id": f"r{version}",
            "artifact_uri": self.store.uri(key),
            "sha256": artifact.sha256,
            "size": len(artifact.data),
            "schema": artifact.schema.model_dump(mode="json", by_alias=True),
            "metrics": {"f1": 0.5},
            "promotion": {"metric": "f1"},
        }
        response = httpx.post(f"{self.registry}/v1/models/{MODEL}/versions", json=body)
        assert response.status_code == 201, response.text
        if damaged is not None:
            self.store.put(key, damaged)
        if lost:
            self.store.delete(key)

    def promote(self, version: int) -> None:
        response = httpx.post(
            f"{self.registry}/v1/models/{MODEL}/aliases/production",
            json={"version": version, "reason": "fault test"},
        )
        assert response.status_code == 200, response.text

    def predict(self) -> httpx.Response:
        return httpx.post(
            f"{self.serving}/v1/models/{MODEL}/predict",
            json={"instances": [instance()]},
            timeout=10,
        )

    def readiness(self) -> tuple[int, str]:
        response = httpx.get(f"{self.serving}/readyz", timeout=10)
        return response.status_code, str(response.json()["detail"])

    def metric(self, name: str, **labels: str) -> float | None:
        text = httpx.get(f"{self.serving}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None


@pytest.fixture
def platform(
    tmp_path: Path, broker: str, database_url: str, object_store_url: str
) -> Iterator[Platform]:
    supervisor = Supervisor(tmp_path / "logs")
    env = {
        "MILLRACE_BROKER": broker,
        "MILLRACE_DATABASE_URL": database_url,
        "MILLRACE_OBJECT_STORE": object_store_url,
    }
    try:
        yield Platform(supervisor, env, tmp_path / "serving-cache")
    finally:
        supervisor.stop_all()


def answered(platform: Platform, *, seconds: float) -> list[tuple[int, Any]]:
    """Predictions in a loop for ``seconds``: (status, version) of each."""
    results = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = platform.predict()
        results.append((response.status_code, response.json().get("version")))
    return results


def test_a_restart_with_the_registry_down_serves_the_cache_then_catches_up(
    platform: Platform,
) -> None:
    platform.start_registry()
    platform.register(1)
    platform.start_serving()
    assert platform.predict().json()["version"] == 1

    platform.supervisor.stop("registry")
    platform.supervisor.stop("serving")
    # /healthz, not /readyz: the first request may come as soon as the port answers
    platform.start_serving(ready="/healthz")
    results = answered(platform, seconds=3)
    assert results and set(results) == {(200, 1)}  # zero 404s
    wait_until(
        lambda: "serving from the local cache" in platform.readiness()[1],
        timeout=30,
        what="readiness to say it serves from the cache",
    )
    status, detail = platform.readiness()
    assert status == 200
    assert "the registry is unreachable" in detail
    assert (
        platform.metric(
            "millrace_serving_target_mismatch",
            model=MODEL,
            alias="production",
            reason="registry_unreachable",
        )
        == 1
    )

    platform.start_registry()
    back = time.monotonic()
    wait_until(
        lambda: platform.readiness()[1] == "1 model(s) loaded",
        timeout=30,
        what="serving to be in step with the registry again",
    )
    caught_up = time.monotonic() - back
    print(f"served from the cache: {len(results)} predictions, in step {caught_up:.2f} s after")
    assert caught_up < 5, f"in step {caught_up:.1f} s after the registry returned"
    assert (
        platform.metric(
            "millrace_serving_target_mismatch",
            model=MODEL,
            alias="production",
            reason="registry_unreachable",
        )
        is None
    )
    platform.register(2)
    platform.promote(2)
    wait_until(
        lambda: platform.predict().json().get("version") == 2,
        timeout=60,
        what="serving to follow the next promotion",
    )


def test_production_moved_to_a_corrupt_or_missing_artifact_keeps_the_old_and_says_why(
    platform: Platform,
) -> None:
    platform.start_registry()
    platform.register(1)
    platform.start_serving()
    good = build_model(seed=2).data
    platform.register(2, damaged=good[:-16] + bytes(16))  # same size, other bytes
    platform.promote(2)

    def mismatch(reason: str) -> float | None:
        return platform.metric(
            "millrace_serving_target_mismatch", model=MODEL, alias="production", reason=reason
        )

    wait_until(lambda: mismatch("sha256_mismatch") == 1, timeout=60, what="the sha256 mismatch")
    assert platform.predict().json()["version"] == 1
    status, detail = platform.readiness()
    assert status == 200
    assert (
        f"differs from the registry: {MODEL}:production serves v1, "
        "the registry's target is v2 (sha256_mismatch)"
    ) in detail

    platform.register(3, lost=True)
    platform.promote(3)
    wait_until(lambda: mismatch("missing_artifact") == 1, timeout=60, what="the missing file")
    assert mismatch("sha256_mismatch") is None
    assert platform.predict().json()["version"] == 1
    assert "the registry's target is v3 (missing_artifact)" in platform.readiness()[1]
