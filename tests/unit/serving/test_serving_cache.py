"""Serving keeps the last-known-good model of every slot on disk and tells the truth about
it: a restart with the registry or the object store away serves what it served before
(never a 404), a target that cannot be loaded keeps the old model and is named (readiness
detail and ``millrace_serving_target_mismatch``), and it catches up when they return."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from millrace_common.contracts import AliasTarget
from millrace_common.db import make_engine
from millrace_common.model_cache import ModelCache
from millrace_common.objectstore import MemoryStore
from millrace_common.scoring import ModelSlots
from millrace_serving.adapters.registry import MemoryRegistry
from millrace_serving.alias_follower import AliasFollower
from millrace_serving.app import bootstrap
from millrace_serving.config import Settings
from millrace_serving.swap import Outcome, Served, Swapper
from prometheus_client import REGISTRY

from tests.support.models import build_model
from tests.support.waiting import until

_names = itertools.count()


def model_name() -> str:
    """A model name per test: the mismatch gauge is process-wide."""
    return f"cached-{next(_names)}"


def mismatch(name: str, reason: str, alias: str = "production") -> float | None:
    return REGISTRY.get_sample_value(
        "millrace_serving_target_mismatch", {"model": name, "alias": alias, "reason": reason}
    )


class DownStore(MemoryStore):
    """An object store that does not answer."""

    def get(self, key: str) -> bytes:
        raise ConnectionError("object store unreachable (fake)")


def follower(
    root: Path, registry: MemoryRegistry, store: MemoryStore, *, name: str
) -> AliasFollower:
    swapper = Swapper(
        slots=ModelSlots(),
        store=store,
        served=Served(models=frozenset({name}), aliases=frozenset({"production"})),
        cache=ModelCache(root),
    )
    return AliasFollower(swapper=swapper, registry=registry)


def upload(store: MemoryStore, name: str, version: int, **kw: str) -> AliasTarget:
    return build_model(seed=version).upload(store, name=name, version=version, **kw)


async def served_once(root: Path, name: str) -> AliasTarget:
    """A first process life: the registry's production v1 loaded, hence cached."""
    store = MemoryStore()
    v1 = upload(store, name, 1)
    first = follower(root, MemoryRegistry({(name, "production"): v1}), store, name=name)
    await first.sync_from_registry()
    assert first.swapper.slots.get(name).version == 1
    return v1


async def test_a_restart_with_the_registry_and_the_store_away_serves_the_cache(
    tmp_path: Path,
) -> None:
    name = model_name()
    v1 = await served_once(tmp_path, name)
    registry = MemoryRegistry()
    registry.reachable = False
    restarted = follower(tmp_path, registry, DownStore(), name=name)
    assert restarted.readiness()[0] is False
    assert await restarted.restore() == 1
    assert await restarted.try_sync() is False
    assert restarted.swapper.slots.get(name).version == 1
    ok, detail = restarted.readiness()
    assert ok is True
    assert "serving from the local cache, the registry is unreachable (ConnectError" in detail
    assert mismatch(name, "registry_unreachable") == 1
    # the registry returns, production unchanged: in step, nothing downloaded
    registry.targets[(name, "production")] = v1
    registry.reachable = True
    assert await restarted.try_sync() is True
    assert restarted.readiness() == (True, "1 model(s) loaded")
    assert mismatch(name, "registry_unreachable") is None


async def test_the_registry_returning_with_a_new_version_is_caught_up_within_seconds(
    tmp_path: Path,
) -> None:
    name = model_name()
    await served_once(tmp_path, name)
    store = MemoryStore()
    registry = MemoryRegistry()
    registry.reachable = False
    restarted = follower(tmp_path, registry, store, name=name)
    await restarted.restore()
    assert await restarted.try_sync() is False
    assert restarted.registry_error == "ConnectError"
    # a long resync interval: the retries while the registry is away are what catch up
    resync = asyncio.create_task(restarted.resync_forever(interval=3600, max_delay=0.05))
    try:
        registry.targets[(name, "production")] = upload(store, name, 2)
        registry.reachable = True
        await until(
            lambda: restarted.readiness() == (True, "1 model(s) loaded"),
            timeout=30,
            what="the restarted runtime to catch up with the registry",
            interval=0.01,
        )
    finally:
        resync.cancel()
    assert restarted.swapper.slots.get(name).version == 2


async def test_a_cached_file_whose_sha256_differs_is_not_served(tmp_path: Path) -> None:
    name = model_name()
    await served_once(tmp_path, name)
    onnx = tmp_path / "models" / name / "1" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\0")
    registry = MemoryRegistry()
    registry.reachable = False
    restarted = follower(tmp_path, registry, DownStore(), name=name)
    assert await restarted.restore() == 0
    await restarted.try_sync()
    ok, detail = restarted.readiness()
    assert ok is False
    assert "the cache held no model" in detail and "ConnectError" in detail


async def test_production_moved_to_a_corrupt_version_keeps_the_old_and_says_why(
    tmp_path: Path,
) -> None:
    name = model_name()
    store = MemoryStore()
    registry = MemoryRegistry({(name, "production"): upload(store, name, 1)})
    serving = follower(tmp_path, registry, store, name=name)
    await serving.sync_from_registry()
    registry.targets[(name, "production")] = upload(store, name, 2, sha256="0" * 64)
    await serving.sync_from_registry()
    assert serving.swapper.slots.get(name).version == 1
    ok, detail = serving.readiness()
    assert ok is True  # it answers every prediction: it stays in rotation
    assert detail == (
        f"1 model(s) loaded; differs from the registry: {name}:production serves v1, "
        "the registry's target is v2 (sha256_mismatch)"
    )
    assert mismatch(name, "sha256_mismatch") == 1
    # the registry moves production to a good version: in step again
    registry.targets[(name, "production")] = upload(store, name, 3)
    await serving.sync_from_registry()
    assert serving.readiness() == (True, "1 model(s) loaded")
    assert mismatch(name, "sha256_mismatch") is None


async def test_a_missing_artifact_or_store_is_named_then_retried(tmp_path: Path) -> None:
    name = model_name()
    store = MemoryStore()
    registry = MemoryRegistry({(name, "production"): upload(store, name, 1)})
    serving = follower(tmp_path, registry, store, name=name)
    await serving.sync_from_registry()
    v2 = build_model(seed=2).target(store, name=name, version=2)  # registered, not uploaded
    registry.targets[(name, "production")] = v2
    await serving.sync_from_registry()
    assert mismatch(name, "missing_artifact") == 1
    assert "the registry's target is v2 (missing_artifact)" in serving.readiness()[1]
    resync = asyncio.create_task(serving.resync_forever(interval=3600, max_delay=0.05))
    try:
        upload(store, name, 2)
        await until(
            lambda: serving.swapper.slots.get(name).version == 2,
            timeout=30,
            what="v2 loaded once its artifact is uploaded",
            interval=0.01,
        )
    finally:
        resync.cancel()
    assert mismatch(name, "missing_artifact") is None


async def test_the_store_away_with_the_cache_holding_the_target_is_in_step(
    tmp_path: Path,
) -> None:
    name = model_name()
    v1 = await served_once(tmp_path, name)
    restarted = follower(
        tmp_path, MemoryRegistry({(name, "production"): v1}), DownStore(), name=name
    )
    await restarted.restore()
    await restarted.sync_from_registry()
    assert restarted.readiness() == (True, "1 model(s) loaded")
    # a new version while the store is away: the old one answers, the reason is named
    restarted.registry.targets[(name, "production")] = build_model(seed=2).target(  # type: ignore[attr-defined]
        MemoryStore(), name=name, version=2
    )
    await restarted.sync_from_registry()
    assert restarted.swapper.slots.get(name).version == 1
    assert mismatch(name, "store_unreachable") == 1


async def test_a_cached_slot_the_registry_no_longer_has_is_unloaded(tmp_path: Path) -> None:
    name = model_name()
    await served_once(tmp_path, name)
    restarted = follower(tmp_path, MemoryRegistry(), MemoryStore(), name=name)
    await restarted.restore()
    assert restarted.swapper.slots.find(name) is not None
    await restarted.sync_from_registry()
    assert restarted.swapper.slots.find(name) is None
    assert ModelCache(tmp_path).current() == []


async def test_a_model_version_already_cached_loads_without_the_store(tmp_path: Path) -> None:
    name = model_name()
    v1 = await served_once(tmp_path, name)
    swapper = follower(tmp_path, MemoryRegistry(), DownStore(), name=name).swapper
    assert await swapper.apply(v1) is Outcome.SWAPPED  # a rollback to a cached version
    assert swapper.slots.get(name).version == 1


async def test_a_runtime_starts_from_its_cache_with_the_registry_and_the_broker_away(
    tmp_path: Path,
) -> None:
    name = model_name()
    await served_once(tmp_path / "cache", name)
    registry = MemoryRegistry()
    registry.reachable = False
    runtime = bootstrap(
        Settings(models=name, publish_predictions=False, broker="127.0.0.1:9"),
        store=DownStore(),
        registry=registry,
        engine=make_engine(f"sqlite:///{tmp_path / 'serving.db'}"),
        cache=ModelCache(tmp_path / "cache"),
    )
    await runtime.start()
    try:

        async def ready() -> bool:
            return (await runtime.ready())[0]

        await until(ready, timeout=30, what="the runtime to be ready from its cache")
        ok, detail = await runtime.ready()
        assert runtime.slots.get(name).version == 1
        assert "serving from the local cache, the registry is unreachable" in detail
        assert "the broker 127.0.0.1:9 is unreachable: not following model-published" in detail
    finally:
        await runtime.stop()
