"""Serving pins only versions the registry has as ``ready`` or ``archived``: a ``rejected``
or ``pending`` one is refused, by the config (not loaded, logged, counted, readiness says
why) and by the admin route (409 naming the version and its status)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from millrace_common.contracts import AliasTarget
from millrace_serving.adapters.registry import MemoryRegistry
from millrace_serving.pinning import RegisteredVersion, refusal
from millrace_serving.runtime import Runtime
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from tests.support.models import build_model
from tests.support.serving import MODEL, app_of, promote, serving_runtime


def refused_count(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "millrace_serving_swap_failures_total", {"model": MODEL, "reason": reason}
    )
    return value or 0.0


def registered(status: str, *, reason: str | None = None, version: int = 4) -> RegisteredVersion:
    target = AliasTarget.model_validate(
        {
            "name": MODEL,
            "version": version,
            "alias": f"v{version}",
            "artifact_uri": "mem:///models/m/model.onnx",
            "sha256": "ab" * 32,
            "size": 10,
            "schema": build_model(seed=1).schema.model_dump(mode="json", by_alias=True),
        }
    )
    return RegisteredVersion(target=target, status=status, rejection_reason=reason)


@pytest.mark.parametrize("status", ["ready", "archived"])
def test_ready_and_archived_versions_may_be_pinned(status: str) -> None:
    assert refusal(registered(status)) is None


def test_rejected_and_pending_versions_are_refused_naming_version_and_status() -> None:
    rejected = refusal(registered("rejected", reason="ONNX output differs by 0.3"))
    assert rejected is not None and rejected.reason == "version_rejected"
    assert rejected.message == (
        f"version 4 of '{MODEL}' is rejected (it failed its checks: ONNX output differs by 0.3)"
    )
    pending = refusal(registered("pending"))
    assert pending is not None and pending.reason == "version_pending"
    assert pending.message == f"version 4 of '{MODEL}' is pending (its checks have not run yet)"


@pytest.mark.parametrize("status", ["", "deleted"])
def test_a_status_serving_does_not_know_is_refused(status: str) -> None:
    unknown = refusal(registered(status))
    assert unknown is not None and unknown.reason == "version_unservable"
    assert "serving loads only ready or archived versions" in unknown.message


def statuses(runtime: Runtime, **by_version: str) -> MemoryRegistry:
    registry = runtime.registry
    assert isinstance(registry, MemoryRegistry)
    for version, status in by_version.items():
        registry.statuses[(MODEL, int(version.removeprefix("v")))] = status
    return registry


async def test_configured_pins_of_rejected_or_pending_versions_are_not_loaded(
    tmp_path: Path,
) -> None:
    runtime = serving_runtime(tmp_path, versions=f"{MODEL}:1,{MODEL}:2,{MODEL}:3")
    registry = statuses(runtime, v1="archived", v2="pending", v3="rejected")
    await promote(runtime, 1)
    before = {r: refused_count(r) for r in ("version_pending", "version_rejected")}
    follower = runtime.alias_follower
    with capture_logs() as logs:
        await follower.sync_from_registry()
        await follower.sync_from_registry()  # a resync asks again: counted and logged once
    slots = runtime.slots
    assert slots.get(MODEL, "v1").version == 1  # archived: a deliberate rollback target
    assert slots.find(MODEL, "v2") is None and slots.find(MODEL, "v3") is None
    assert follower.readiness() == (
        False,
        f"{MODEL}:v2 refused: version 2 of '{MODEL}' is pending (its checks have not run yet); "
        f"{MODEL}:v3 refused: version 3 of '{MODEL}' is rejected (it failed its checks)",
    )
    assert refused_count("version_pending") == before["version_pending"] + 1
    assert refused_count("version_rejected") == before["version_rejected"] + 1
    refusals = [e for e in logs if e["event"] == "load_refused"]
    assert [(e["version"], e["reason"]) for e in refusals] == [
        (2, "version_pending"),
        (3, "version_rejected"),
    ]

    registry.statuses[(MODEL, 2)] = "ready"  # its checks passed: the next resync loads it
    registry.statuses[(MODEL, 3)] = "archived"
    await follower.sync_from_registry()
    assert slots.get(MODEL, "v2").version == 2 and slots.get(MODEL, "v3").version == 3
    assert follower.readiness() == (True, "4 model(s) loaded")


async def test_the_admin_route_answers_409_for_rejected_and_pending_versions(
    tmp_path: Path,
) -> None:
    runtime = serving_runtime(tmp_path)
    statuses(runtime, v1="archived", v2="rejected", v3="pending")
    await promote(runtime, 1)
    client = TestClient(app_of(runtime))
    admin = f"/v1/admin/models/{MODEL}/load"

    rejected = client.post(admin, json={"version": 2})
    assert rejected.status_code == 409 and rejected.json()["field"] == "version"
    assert "version 2 of 'machine-failure' is rejected" in rejected.json()["message"]
    pending = client.post(admin, json={"version": 3})
    assert pending.status_code == 409
    assert "version 3 of 'machine-failure' is pending" in pending.json()["message"]
    assert runtime.slots.find(MODEL, "v2") is None and runtime.slots.find(MODEL, "v3") is None
    archived = client.post(admin, json={"version": 1})
    assert archived.status_code == 200 and archived.json()["slot"] == "v1"
