"""Hot-swap rules: swap, no-op on the loaded version, ignore what is not served, and
keep the old model on any failure (counted by reason)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from millrace_common.contracts import AliasTarget, TensorSpec
from millrace_common.objectstore import MemoryStore
from millrace_common.scoring import ModelSlots
from millrace_serving.adapters.registry import MemoryRegistry
from millrace_serving.alias_follower import AliasFollower
from millrace_serving.swap import Outcome, Served, Swapper
from prometheus_client import REGISTRY

from tests.support.models import build_model, published

MODEL = "machine-failure"


def failures(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "millrace_serving_swap_failures_total", {"model": MODEL, "reason": reason}
    )
    return value or 0.0


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    for version in (1, 2):
        artifact = build_model(seed=version)
        store.put(artifact.key(MODEL, version), artifact.data)
    return store


@pytest.fixture
def swapper(store: MemoryStore) -> Swapper:
    return Swapper(
        slots=ModelSlots(),
        store=store,
        served=Served(models=frozenset({MODEL}), aliases=frozenset({"production"})),
    )


def target(store: MemoryStore, version: int, **changes: object) -> AliasTarget:
    base = build_model(seed=version).target(store, name=MODEL, version=version)
    return base.model_copy(update=changes)


async def test_swaps_in_new_versions_and_ignores_the_loaded_one(
    swapper: Swapper, store: MemoryStore
) -> None:
    assert await swapper.apply(target(store, 1)) is Outcome.SWAPPED
    first = swapper.slots.get(MODEL)
    assert await swapper.apply(target(store, 1)) is Outcome.UNCHANGED
    assert swapper.slots.get(MODEL) is first
    assert await swapper.apply(target(store, 2)) is Outcome.SWAPPED
    assert swapper.slots.get(MODEL).version == 2


async def test_ignores_models_and_aliases_not_served(swapper: Swapper, store: MemoryStore) -> None:
    assert await swapper.apply(target(store, 1, name="other")) is Outcome.IGNORED
    assert await swapper.apply(target(store, 1, alias="staging")) is Outcome.IGNORED
    assert len(swapper.slots) == 0


async def test_digest_mismatch_keeps_the_old_model_and_is_counted_once(
    swapper: Swapper, store: MemoryStore
) -> None:
    await swapper.apply(target(store, 1))
    before = failures("sha256_mismatch")
    corrupt = target(store, 2, sha256="0" * 64)
    assert await swapper.apply(corrupt) is Outcome.FAILED
    assert await swapper.apply(corrupt) is Outcome.FAILED  # known bad: not fetched again
    assert swapper.slots.get(MODEL).version == 1
    assert failures("sha256_mismatch") == before + 1


async def test_schema_that_differs_from_the_session_is_rejected(
    swapper: Swapper, store: MemoryStore
) -> None:
    wrong = target(store, 1)
    schema = wrong.model_schema.model_copy(
        update={"outputs": [TensorSpec(name="score", dtype="float32", shape=[None])]}
    )
    assert await swapper.apply(wrong.model_copy(update={"model_schema": schema})) is Outcome.FAILED
    assert swapper.slots.find(MODEL) is None


async def test_missing_artifact_fails_then_loads_once_uploaded(
    swapper: Swapper, store: MemoryStore
) -> None:
    artifact = build_model(seed=3)
    later = artifact.target(store, name=MODEL, version=3)
    before = failures("missing_artifact")
    assert await swapper.apply(later) is Outcome.FAILED
    assert failures("missing_artifact") == before + 1
    store.put(artifact.key(MODEL, 3), artifact.data)
    assert await swapper.apply(later) is Outcome.SWAPPED


async def test_requests_keep_the_old_model_while_a_new_one_loads(
    swapper: Swapper, store: MemoryStore
) -> None:
    await swapper.apply(target(store, 1))
    loading = asyncio.create_task(swapper.apply(target(store, 2)))
    seen = set()
    while not loading.done():
        seen.add(swapper.slots.get(MODEL).version)
        await asyncio.sleep(0)
    assert loading.result() is Outcome.SWAPPED
    assert 1 in seen and swapper.slots.get(MODEL).version == 2


async def test_follower_loads_the_registry_and_is_ready_without_unpromoted_models(
    store: MemoryStore,
) -> None:
    swapper = Swapper(
        slots=ModelSlots(),
        store=store,
        served=Served(models=frozenset(), aliases=frozenset({"production"})),
    )
    registry = MemoryRegistry({(MODEL, "production"): target(store, 1)}, names=["spindle"])
    follower = AliasFollower(swapper=swapper, registry=registry)
    assert follower.readiness()[0] is False
    await follower.sync_from_registry()
    assert follower.readiness() == (True, "1 model(s) loaded")
    assert follower.expected == {(MODEL, "production")}


async def test_follower_retries_until_the_registry_answers(store: MemoryStore) -> None:
    swapper = Swapper(
        slots=ModelSlots(),
        store=store,
        served=Served(models=frozenset({MODEL}), aliases=frozenset({"production"})),
    )
    registry = MemoryRegistry({(MODEL, "production"): target(store, 1)})
    registry.reachable = False
    follower = AliasFollower(swapper=swapper, registry=registry)
    syncing = asyncio.create_task(follower.sync_until_done(max_delay=0.05))
    await asyncio.sleep(0.1)
    assert not syncing.done() and follower.synced is False
    registry.reachable = True
    await asyncio.wait_for(syncing, timeout=5)
    assert swapper.slots.get(MODEL).version == 1


async def test_follower_applies_model_published_events(store: MemoryStore) -> None:
    swapper = Swapper(
        slots=ModelSlots(),
        store=store,
        served=Served(models=frozenset({MODEL}), aliases=frozenset({"production"})),
    )
    follower = AliasFollower(swapper=swapper, registry=MemoryRegistry())
    t = target(store, 2)
    event = published(t, lineage_id="l-1")
    assert await follower.on_event(event) is Outcome.SWAPPED
    assert await follower.on_event(event) is Outcome.UNCHANGED


def test_registry_fake_raises_like_the_http_client() -> None:
    registry = MemoryRegistry()
    registry.reachable = False
    with pytest.raises(httpx.HTTPError):
        asyncio.run(registry.model_names())
