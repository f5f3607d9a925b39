"""The edge agent keeps its site's models: verify before swap, cache on disk, serve the
last-known-good model after a restart with no network, and never stop on a bad poll."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from millrace_common.contracts import AliasTarget
from millrace_common.errors import InvalidInput, NotFound
from millrace_common.objectstore import MemoryStore
from millrace_common.scoring import ModelSlots
from millrace_edge_agent.adapters.cache import ModelCache
from millrace_edge_agent.app import bootstrap
from millrace_edge_agent.backoff import next_delay
from millrace_edge_agent.config import Settings
from millrace_edge_agent.status import describe
from millrace_edge_agent.sync import Syncer, manifest_key
from prometheus_client import REGISTRY

from tests.support.models import build_model, deploy_to_site

SITE = "plant-1"
MODEL = "machine-failure"


class DownStore(MemoryStore):
    """A store whose every call fails, as when the link is down."""

    def get(self, key: str) -> bytes:
        raise ConnectionError("object store unreachable")

    def get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        raise ConnectionError("object store unreachable")


def publish(
    store: MemoryStore, version: int, *, sha256: str | None = None, site: str = SITE
) -> AliasTarget:
    """Version ``version`` (seed ``version``) on SITE; ``site`` is the site its manifest claims."""
    return deploy_to_site(
        store,
        site=SITE,
        name=MODEL,
        version=version,
        seed=version,
        sha256=sha256,
        claimed_site=site,
    )


def syncer(store: MemoryStore, root: Path) -> Syncer:
    return Syncer(site=SITE, store=store, cache=ModelCache(root), slots=ModelSlots())


def test_loads_the_manifest_model_and_caches_it(tmp_path: Path) -> None:
    store = MemoryStore()
    target = publish(store, 1)
    agent = syncer(store, tmp_path)
    assert agent.sync_once() is True
    assert agent.slots.get(MODEL).version == 1
    assert (tmp_path / "models" / MODEL / "1" / "model.onnx").read_bytes() == build_model(
        seed=1
    ).data
    meta = AliasTarget.model_validate_json(
        (tmp_path / "models" / MODEL / "1" / "meta.json").read_bytes()
    )
    assert meta == target
    assert orjson.loads((tmp_path / "current.json").read_bytes())["models"][0]["version"] == 1
    assert agent.sync_once() is False  # same ETag: nothing to do


def test_serves_from_disk_after_a_restart_with_the_store_down(tmp_path: Path) -> None:
    store = MemoryStore()
    publish(store, 1)
    publish(store, 2)
    syncer(store, tmp_path).sync_once()
    restarted = syncer(DownStore(), tmp_path)
    assert restarted.restore() == 1
    assert restarted.slots.get(MODEL).version == 2
    with pytest.raises(ConnectionError):
        restarted.sync_once()
    assert restarted.slots.get(MODEL).version == 2


def test_a_corrupt_artifact_keeps_the_old_model(tmp_path: Path) -> None:
    store = MemoryStore()
    publish(store, 1)
    agent = syncer(store, tmp_path)
    agent.sync_once()
    before = (
        REGISTRY.get_sample_value(
            "millrace_edge_swap_failures_total", {"model": MODEL, "reason": "integrity"}
        )
        or 0
    )
    publish(store, 2, sha256="f" * 64)
    agent.sync_once()
    agent.sync_once()
    assert agent.slots.get(MODEL).version == 1
    assert "sha256 mismatch" in (agent.status.last_error or "")
    assert not (tmp_path / "models" / MODEL / "2").exists()
    assert (
        REGISTRY.get_sample_value(
            "millrace_edge_swap_failures_total", {"model": MODEL, "reason": "integrity"}
        )
        == before + 1
    )
    publish(store, 2)  # the registry fixes the manifest
    agent.sync_once()
    assert agent.slots.get(MODEL).version == 2


def test_keeps_the_last_three_versions_on_disk(tmp_path: Path) -> None:
    store = MemoryStore()
    agent = syncer(store, tmp_path)
    for version in range(1, 6):
        publish(store, version)
        agent.sync_once()
    kept = sorted(int(p.name) for p in (tmp_path / "models" / MODEL).iterdir())
    assert kept == [3, 4, 5]
    assert agent.slots.get(MODEL).version == 5


def test_a_rollback_to_a_cached_version_needs_no_download(tmp_path: Path) -> None:
    store = MemoryStore()
    agent = syncer(store, tmp_path)
    publish(store, 1)
    agent.sync_once()
    publish(store, 2)
    agent.sync_once()
    del store.objects[build_model(seed=1).key(MODEL, 1)]
    publish(store, 1)
    del store.objects[build_model(seed=1).key(MODEL, 1)]
    agent.sync_once()
    assert agent.slots.get(MODEL).version == 1


def test_a_manifest_for_another_site_or_garbage_is_refused(tmp_path: Path) -> None:
    store = MemoryStore()
    publish(store, 1, site="plant-2")
    with pytest.raises(InvalidInput, match="plant-2"):
        syncer(store, tmp_path).sync_once()
    store.put(manifest_key(SITE), b"{not json")
    with pytest.raises(InvalidInput):
        syncer(store, tmp_path).sync_once()
    with pytest.raises(NotFound):
        syncer(MemoryStore(), tmp_path).sync_once()


async def test_a_failed_poll_is_counted_and_serving_goes_on(tmp_path: Path) -> None:
    store = MemoryStore()
    publish(store, 1)
    syncer(store, tmp_path).sync_once()
    runtime = bootstrap(Settings(site=SITE, cache_dir=str(tmp_path)), store=DownStore())
    runtime.syncer.restore()
    before = (
        REGISTRY.get_sample_value(
            "millrace_edge_sync_failures_total", {"reason": "store_unreachable"}
        )
        or 0
    )
    assert await runtime.poller.poll_once() == 1
    assert await runtime.poller.poll_once() == 2
    assert (
        REGISTRY.get_sample_value(
            "millrace_edge_sync_failures_total", {"reason": "store_unreachable"}
        )
        == before + 2
    )
    assert (describe(runtime).last_error or "").startswith("store_unreachable")
    assert await runtime.ready() == (True, "1 model(s) loaded")


def test_backoff_grows_with_failures_within_jittered_bounds() -> None:
    assert next_delay(interval=5, failures=0, cap=60) == 5
    assert next_delay(interval=5, failures=1, cap=60, rand=lambda: 1.0) == 10
    assert next_delay(interval=5, failures=3, cap=60, rand=lambda: 0.0) == 5
    assert next_delay(interval=5, failures=30, cap=60, rand=lambda: 1.0) == 60


def test_a_missing_artifact_is_retried_on_the_next_poll(tmp_path: Path) -> None:
    store = MemoryStore()
    publish(store, 1)
    del store.objects[build_model(seed=1).key(MODEL, 1)]
    agent = syncer(store, tmp_path)
    agent.sync_once()
    assert agent.slots.find(MODEL) is None and "no object" in (agent.status.last_error or "")
    publish(store, 1)
    agent.sync_once()
    assert agent.slots.get(MODEL).version == 1
