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
from prometheus_client.parser import text_string_to_metric_families

from tests.support.models import build_model, instance
from tests.support.registry import registration

pytestmark = pytest.mark.integration
MODEL = "machine-failure"
REQUESTS = 800
# binomial sd of a 25% share over 800 requests is 1.53 points: 6 points is ~4 sd
TOLERANCE = 0.06


def uploaded(store_url: str, version: int, f1: float) -> dict[str, Any]:
    """Upload the seed-``version`` model and describe it as the trainer would."""
    target = build_model(seed=version).upload(open_store(store_url), name=MODEL, version=version)
    return registration(f"r{version}", f1, target=target)


def start_registry(supervisor: Supervisor, shared: dict[str, str]) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    supervisor.start(
        ProcessSpec(
            name="registry",
            argv=[script("millrace-registry")],
            env=shared | {"MILLRACE_REGISTRY_PORT": str(port)},
            ready_url=f"{url}/readyz",
        ),
        timeout=120,
    )
    return url


def start_serving(
    supervisor: Supervisor, shared: dict[str, str], *, registry: str, ready: str, **env: str
) -> str:
    """Serving on a free port, following ``registry``; started once ``ready`` (a path)
    answers 200."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    supervisor.start(
        ProcessSpec(
            name="serving",
            argv=[script("millrace-serving")],
            env=shared
            | {
                "MILLRACE_SERVING_PORT": str(port),
                "MILLRACE_SERVING_REGISTRY_URL": registry,
                "MILLRACE_SERVING_MODELS": MODEL,
                "MILLRACE_SERVING_PUBLISH_PREDICTIONS": "false",
            }
            | env,
            ready_url=f"{url}{ready}",
        ),
        timeout=120,
    )
    return url


def register(registry: str, body: dict[str, Any]) -> None:
    response = httpx.post(f"{registry}/v1/models/{MODEL}/versions", json=body)
    assert response.status_code == 201, response.text


@pytest.fixture
def shared(broker: str, database_url: str, object_store_url: str) -> dict[str, str]:
    return {
        "MILLRACE_BROKER": broker,
        "MILLRACE_DATABASE_URL": database_url,
        "MILLRACE_OBJECT_STORE": object_store_url,
    }


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Supervisor]:
    supervisor = Supervisor(tmp_path / "logs")
    try:
        yield supervisor
    finally:
        supervisor.stop_all()


@pytest.fixture
def platform(
    processes: Supervisor, shared: dict[str, str], object_store_url: str
) -> tuple[str, str]:
    """(registry URL, serving URL): v1 in production, v2 the challenger."""
    registry = start_registry(processes, shared)
    for version, f1 in ((1, 0.8), (2, 0.7)):  # v2 does not beat v1: the challenger
        register(registry, uploaded(object_store_url, version, f1))
    serving = start_serving(
        processes,
        shared,
        registry=registry,
        ready="/readyz",
        MILLRACE_SERVING_TRAFFIC_INTERVAL="0.5",
    )
    return registry, serving


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


def test_serving_pins_only_ready_or_archived_versions_of_the_real_registry(
    processes: Supervisor, shared: dict[str, str], object_store_url: str
) -> None:
    """Pinned by config: archived v2 loads, pending v4 does not (readiness and the swap
    failure metric say why) until its checks pass. By the admin route: rejected v5 is a
    409 naming its status."""
    registry = start_registry(processes, shared)
    for version, f1 in ((1, 0.8), (2, 0.7), (3, 0.6)):  # v1 production, v3 the challenger
        register(registry, uploaded(object_store_url, version, f1))
    archived = httpx.patch(
        f"{registry}/v1/models/{MODEL}/versions/2", json={"status": "archived", "reason": "old"}
    )
    assert archived.status_code == 200, archived.text
    register(registry, uploaded(object_store_url, 4, 0.9) | {"status": "pending"})
    register(
        registry,
        uploaded(object_store_url, 5, 0.9)
        | {"status": "rejected", "rejection_reason": "ONNX output differs from the model's"},
    )
    serving = start_serving(
        processes,
        shared,
        registry=registry,
        ready="/healthz",
        MILLRACE_SERVING_VERSIONS=f"{MODEL}:2,{MODEL}:4",
        MILLRACE_SERVING_RESYNC_INTERVAL="0.5",
    )
    why = f"{MODEL}:v4 refused: version 4 of '{MODEL}' is pending (its checks have not run yet)"
    wait_until(
        lambda: readiness(serving) == (503, why), timeout=60, what="readiness to name v4's refusal"
    )
    assert predicted_version(serving, 2) == 2  # archived: a deliberate rollback target
    assert predicted_version(serving, 4) is None
    assert swap_failures(serving, "version_pending") == 1.0  # once, however often it resyncs

    rejected = httpx.post(f"{serving}/v1/admin/models/{MODEL}/load", json={"version": 5})
    assert rejected.status_code == 409 and rejected.json()["field"] == "version"
    assert rejected.json()["message"] == (
        f"not loaded: version 5 of '{MODEL}' is rejected "
        "(it failed its checks: ONNX output differs from the model's)"
    )
    assert predicted_version(serving, 5) is None

    checked = httpx.post(f"{registry}/v1/models/{MODEL}/versions/4/checks", json={"passed": True})
    assert checked.status_code == 200 and checked.json()["status"] == "ready", checked.text
    wait_until(lambda: readiness(serving)[0] == 200, timeout=60, what="serving to load v4")
    assert predicted_version(serving, 4) == 4


def readiness(serving: str) -> tuple[int, str]:
    response = httpx.get(f"{serving}/readyz")
    return response.status_code, response.json()["detail"]


def predicted_version(serving: str, version: int) -> int | None:
    """The version that answers a request pinned to ``version``; None when it is not served."""
    response = httpx.post(
        f"{serving}/v1/models/{MODEL}/predict", json={"instances": [instance()], "version": version}
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return int(response.json()["version"])


def swap_failures(serving: str, reason: str) -> float:
    text = httpx.get(f"{serving}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "millrace_serving_swap_failures_total" and sample.labels == {
                "model": MODEL,
                "reason": reason,
            }:
                return sample.value
    return 0.0
