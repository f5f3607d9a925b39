"""Traffic policies read from the registry: parsing (and the field a bad one names), the
challenger loaded for a policy and unloaded after it, the environment's precedence, an
unreachable registry or a bad document keeping the current policy, sticky keys."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from millrace_common.dataplane import Route
from millrace_common.errors import InvalidInput
from millrace_serving.adapters.registry import MemoryRegistry
from millrace_serving.runtime import Runtime
from millrace_serving.traffic import BadPolicy, Policy, parse_policies, policy_from_registry
from millrace_serving.traffic_follower import TrafficFollower

from tests.support.serving import MODEL, app_of, promote, serving_runtime, target


def canary(percent: float, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "mode": "canary",
        "challenger_alias": "challenger",
        "percent": percent,
        "key_field": None,
        "reason": "test",
    } | extra


def test_registry_documents_become_policies() -> None:
    assert policy_from_registry({"mode": "none", "percent": None}) is None
    assert policy_from_registry(canary(25)) == Policy(mode="canary", percent=25.0)
    assert policy_from_registry({"mode": "shadow", "challenger_alias": "staging"}) == Policy(
        mode="shadow", challenger="staging"
    )
    assert policy_from_registry(canary(10, mode="sticky", key_field="entity_id")) == Policy(
        mode="sticky", percent=10.0, key_field="entity_id"
    )


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"mode": "split"}, "mode"),
        ({}, "mode"),
        (canary(None), "percent"),  # type: ignore[arg-type]
        (canary(120), "percent"),
        (canary(True), "percent"),
        (canary("25"), "percent"),  # type: ignore[arg-type]
        (canary(5, key_field="user"), "key_field"),
        (canary(5, challenger_alias=7), "challenger_alias"),
    ],
)
def test_a_bad_registry_document_names_its_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(BadPolicy) as caught:
        policy_from_registry(doc)
    assert caught.value.field == field


def test_the_environment_spec_takes_sticky_and_names_bad_items() -> None:
    assert parse_policies("a:sticky:5, b:shadow") == {
        "a": Policy(mode="sticky", percent=5.0),
        "b": Policy(mode="shadow"),
    }
    with pytest.raises(InvalidInput, match="'a:sticky'"):
        parse_policies("a:sticky")


async def production_with_challenger_in_registry(
    tmp_path: Path, **settings: Any
) -> tuple[Runtime, MemoryRegistry, TrafficFollower]:
    """Serves production only; the registry also has a challenger (v2)."""
    runtime = serving_runtime(tmp_path, **settings)
    await promote(runtime, 1)
    registry = runtime.registry
    assert isinstance(registry, MemoryRegistry) and runtime.traffic_follower is not None
    registry.targets[(MODEL, "challenger")] = target(runtime, 2, "challenger")
    return runtime, registry, runtime.traffic_follower


def versions(runtime: Runtime, requests: int, **route: Any) -> Counter[int]:
    assert runtime.traffic_follower is not None
    select = runtime.traffic_follower.selector
    return Counter(select(Route(name=MODEL, **route)).model.version for _ in range(requests))


async def test_a_registry_canary_loads_the_challenger_then_none_unloads_it(tmp_path: Path) -> None:
    runtime, registry, follower = await production_with_challenger_in_registry(tmp_path)
    registry.policies[MODEL] = canary(25)
    await follower.sync()
    assert runtime.slots.find(MODEL, "challenger").version == 2  # type: ignore[union-attr]
    share = versions(runtime, 2000)[2] / 2000
    assert abs(share - 0.25) <= 0.04, share  # sd ~1 point
    admin = TestClient(app_of(runtime)).get("/v1/admin/traffic").json()
    assert admin[MODEL] == {
        "mode": "canary",
        "challenger_alias": "challenger",
        "percent": 25.0,
        "key_field": "key",
        "source": "registry",
        "challenger_version": 2,
    }

    registry.policies[MODEL] = canary(None, mode="none")
    await follower.sync()
    assert versions(runtime, 200) == {1: 200}
    assert runtime.slots.find(MODEL, "challenger") is None  # loaded for the policy only


async def test_a_moved_challenger_alias_is_followed(tmp_path: Path) -> None:
    runtime, registry, follower = await production_with_challenger_in_registry(tmp_path)
    registry.policies[MODEL] = canary(100)
    await follower.sync()
    registry.targets[(MODEL, "challenger")] = target(runtime, 3, "challenger")
    await follower.sync()
    assert versions(runtime, 20) == {3: 20}


async def test_the_environment_overrides_the_registry(tmp_path: Path) -> None:
    runtime, registry, follower = await production_with_challenger_in_registry(
        tmp_path, traffic=f"{MODEL}:canary:100"
    )
    registry.policies[MODEL] = canary(None, mode="none")
    await follower.sync()
    assert versions(runtime, 20) == {2: 20}  # the challenger was loaded for the env policy
    assert follower.describe()[MODEL]["source"] == "env"


async def test_an_unreachable_registry_or_a_bad_policy_keeps_the_current_one(
    tmp_path: Path,
) -> None:
    runtime, registry, follower = await production_with_challenger_in_registry(tmp_path)
    registry.policies[MODEL] = canary(100)
    await follower.sync()
    registry.reachable = False
    await follower.sync()
    assert versions(runtime, 20) == {2: 20}
    registry.reachable = True
    registry.policies[MODEL] = canary(100, mode="split")
    await follower.sync()
    assert versions(runtime, 20) == {2: 20}


async def test_sticky_routes_by_key_or_entity_and_keyless_requests_stay_on_production(
    tmp_path: Path,
) -> None:
    runtime, registry, follower = await production_with_challenger_in_registry(tmp_path)
    registry.policies[MODEL] = canary(50, mode="sticky")
    await follower.sync()
    assert versions(runtime, 100) == {1: 100}  # no key: production
    keyed = [versions(runtime, 5, key=f"user-{i}") for i in range(200)]
    assert all(len(c) == 1 for c in keyed)  # each key always gets the same version
    share = sum(2 in c for c in keyed) / 200
    assert abs(share - 0.5) <= 0.15, share  # sd 3.5 points
    registry.policies[MODEL] = canary(50, mode="sticky", key_field="entity_id")
    await follower.sync()
    assert versions(runtime, 50, key="ignored") == {1: 50}  # keyed by entity, none sent
    by_entity = [versions(runtime, 5, entity=f"m-{i}") for i in range(50)]
    assert all(len(c) == 1 for c in by_entity) and {v for c in by_entity for v in c} == {1, 2}
