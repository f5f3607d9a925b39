"""Traffic policies end to end: a real registry process (Postgres, S3 protocol, broker)
holds the policy, a real serving process follows it. A canary of 25% set through the
registry's REST API splits ~800 requests within the stated tolerance; setting the mode
back to none sends every request to production."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from millrace_cli.processes import ProcessSpec, Supervisor, free_port, script, wait_until
from millrace_common.objectstore import open_store

from tests.support_models import build_model, instance

pytestmark = pytest.mark.integration
MODEL = "machine-failure"
REQUESTS = 800
# binomial sd of a 25% share over 800 requests is 1.53 points: 6 points is ~4 sd
TOLERANCE = 0.06


def registration(store_url: str, version: int, f1: float) -> dict[str, Any]:
    """Upload the seed-``version`` model and describe it as the trainer would."""
    store = open_store(store_url)
    artifact = build_model(seed=version)
    key = artifact.key(MODEL, version)
    store.put(key, artifact.data)
    return {
        "request_id": f"r{version}",
        "artifact_uri": store.uri(key),
        "sha256": artifact.sha256,
        "size": len(artifact.data),
        "schema": artifact.schema.model_dump(mode="json", by_alias=True),
        "metrics": {"f1": f1},
        "promotion": {"metric": "f1"},
    }


@pytest.fixture
def platform(
    tmp_path: Path, broker: str, database_url: str, object_store_url: str
) -> Iterator[tuple[str, str]]:
    """(registry URL, serving URL): v1 in production, v2 the challenger."""
    supervisor = Supervisor(tmp_path / "logs")
    shared = {
        "MILLRACE_BROKER": broker,
        "MILLRACE_DATABASE_URL": database_url,
        "MILLRACE_OBJECT_STORE": object_store_url,
    }
    registry_port, serving_port = free_port(), free_port()
    registry = f"http://127.0.0.1:{registry_port}"
    serving = f"http://127.0.0.1:{serving_port}"
    try:
        supervisor.start(
            ProcessSpec(
                name="registry",
                argv=[script("millrace-registry")],
                env=shared | {"MILLRACE_REGISTRY_PORT": str(registry_port)},
                ready_url=f"{registry}/readyz",
            ),
            timeout=120,
        )
        for version, f1 in ((1, 0.8), (2, 0.7)):  # v2 does not beat v1: the challenger
            response = httpx.post(
                f"{registry}/v1/models/{MODEL}/versions",
                json=registration(object_store_url, version, f1),
            )
            assert response.status_code == 201, response.text
        supervisor.start(
            ProcessSpec(
                name="serving",
                argv=[script("millrace-serving")],
                env=shared
                | {
                    "MILLRACE_SERVING_PORT": str(serving_port),
                    "MILLRACE_SERVING_REGISTRY_URL": registry,
                    "MILLRACE_SERVING_MODELS": MODEL,
                    "MILLRACE_SERVING_PUBLISH_PREDICTIONS": "false",
                    "MILLRACE_SERVING_TRAFFIC_INTERVAL": "0.5",
                },
                ready_url=f"{serving}/readyz",
            ),
            timeout=120,
        )
        yield registry, serving
    finally:
        supervisor.stop_all()


def set_traffic(registry: str, body: dict[str, Any]) -> None:
    response = httpx.put(f"{registry}/v1/models/{MODEL}/traffic", json=body)
    assert response.status_code == 200, response.text


def wait_for_policy(serving: str, *, mode: str, challenger_version: int | None) -> None:
    """Serving applies a policy on its next poll: wait until its admin view shows it."""

    def applied() -> bool:
        view = httpx.get(f"{serving}/v1/admin/traffic").json().get(MODEL, {})
        return view.get("mode") == mode and view.get("challenger_version") == challenger_version

    wait_until(applied, timeout=30, what=f"serving to apply traffic mode {mode}")


def answers(serving: str, count: int) -> Counter[tuple[int, str]]:
    with httpx.Client(base_url=serving, timeout=10) as client:
        bodies = [
            client.post(f"/v1/models/{MODEL}/predict", json={"instances": [instance()]}).json()
            for _ in range(count)
        ]
    return Counter((body["version"], body["alias"]) for body in bodies)


def test_a_canary_set_in_the_registry_splits_serving_traffic_then_none_stops_it(
    platform: tuple[str, str],
) -> None:
    registry, serving = platform
    assert answers(serving, 50) == {(1, "production"): 50}  # no policy yet

    set_traffic(registry, {"mode": "canary", "percent": 25, "reason": "try v2 on 25%"})
    wait_for_policy(serving, mode="canary", challenger_version=2)
    split = answers(serving, REQUESTS)
    assert set(split) == {(1, "production"), (2, "challenger")}
    share = split[(2, "challenger")] / REQUESTS
    print(f"challenger share over {REQUESTS} requests: {share:.3f} (target 0.25)")
    assert abs(share - 0.25) <= TOLERANCE, f"challenger share {share:.3f}"

    set_traffic(registry, {"mode": "none", "reason": "canary over"})
    wait_for_policy(serving, mode="none", challenger_version=None)
    assert answers(serving, 200) == {(1, "production"): 200}
    audit = httpx.get(f"{registry}/v1/models/{MODEL}/audit").json()
    assert [e["action"] for e in audit[:2]] == ["traffic_none", "traffic_canary"]
