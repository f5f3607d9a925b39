"""Done-when 2: every way a new model can fail to load — a corrupt download, a sha256
mismatch, a schema that differs from the event, a session that fails to open, a warm-up
that fails — leaves the old model serving with zero failed requests under a concurrent
request loop, and is counted by reason. An event for the loaded version is a no-op."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from millrace_common.contracts import AliasTarget, TensorSpec
from millrace_common.objectstore import MemoryStore, sha256_hex
from millrace_serving.runtime import Runtime
from millrace_serving.swap import Outcome
from prometheus_client import REGISTRY

from tests.support.models import instance
from tests.support.serving import MODEL, app_of, promote, serving_runtime, target
from tests.support.waiting import until


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class RequestLoop:
    """``workers`` clients posting predictions back to back until stopped."""

    def __init__(self, client: httpx.AsyncClient, *, workers: int = 4) -> None:
        self.client = client
        self.results: list[tuple[int, int | None]] = []
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._run()) for _ in range(workers)]

    async def _run(self) -> None:
        while not self._stop.is_set():
            response = await self.client.post(
                f"/v1/models/{MODEL}/predict", json={"instances": [instance()]}
            )
            ok = response.status_code == 200
            self.results.append((response.status_code, response.json()["version"] if ok else None))
            await asyncio.sleep(0)  # in-process transport: a request may never suspend

    async def wait_for(self, count: int) -> None:
        await until(
            lambda: len(self.results) >= count,
            timeout=30,
            what=f"{count} answered predictions",
            interval=0.005,
        )

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


def five_feature_model() -> bytes:
    """A valid ONNX classifier with the right tensor names but 5 inputs, not 7."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 5)).astype(np.float32)
    fitted = LogisticRegression().fit(x, (x[:, 0] > 0).astype(np.int64))
    onx = to_onnx(
        fitted,
        initial_types=[("input", FloatTensorType([None, 5]))],
        options={id(fitted): {"zipmap": False}},
        target_opset=17,
    )
    return onx.SerializeToString()


def replaced_bytes(data: bytes) -> Callable[[Runtime, AliasTarget], AliasTarget]:
    """Upload ``data`` as version 2 and describe it truthfully (size and digest match)."""

    def bad(runtime: Runtime, good: AliasTarget) -> AliasTarget:
        store = runtime.swapper.store
        store.put(f"models/{MODEL}/2/model.onnx", data)
        return good.model_copy(update={"sha256": sha256_hex(data), "size": len(data)})

    return bad


def truncated(runtime: Runtime, good: AliasTarget) -> AliasTarget:
    store = runtime.swapper.store
    assert isinstance(store, MemoryStore)
    key = f"models/{MODEL}/2/model.onnx"
    store.put(key, store.get(key)[: good.size // 2])  # the transfer stopped half way
    return good


def wrong_digest(_runtime: Runtime, good: AliasTarget) -> AliasTarget:
    return good.model_copy(update={"sha256": "0" * 64})


def other_schema(_runtime: Runtime, good: AliasTarget) -> AliasTarget:
    schema = good.model_schema.model_copy(
        update={"outputs": [TensorSpec(name="score", dtype="float32", shape=[None])]}
    )
    return good.model_copy(update={"model_schema": schema})


CASES = {
    "corrupt_download": truncated,
    "sha256_mismatch": wrong_digest,
    "schema_mismatch": other_schema,
    "session_open": replaced_bytes(b"this is not an ONNX model" * 40),
    "warmup": replaced_bytes(five_feature_model()),
}


@pytest.fixture
async def runtime(tmp_path: Path) -> Runtime:
    runtime = serving_runtime(tmp_path)
    await promote(runtime, 1)
    return runtime


@pytest.mark.parametrize("reason", list(CASES))
async def test_a_failed_swap_keeps_the_old_model_serving(runtime: Runtime, reason: str) -> None:
    bad = CASES[reason](runtime, target(runtime, 2))
    before = counted("millrace_serving_swap_failures_total", model=MODEL, reason=reason)
    transport = httpx.ASGITransport(app=app_of(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
        loop = RequestLoop(client)
        await loop.wait_for(20)
        assert await runtime.swapper.apply(bad) is Outcome.FAILED
        served_during = len(loop.results)
        await loop.wait_for(served_during + 20)
        await loop.stop()
    assert {status for status, _ in loop.results} == {200}
    assert {version for _, version in loop.results} == {1}
    assert counted("millrace_serving_swap_failures_total", model=MODEL, reason=reason) == before + 1
    assert counted("millrace_serving_loaded_version", model=MODEL, alias="production") == 1


async def test_an_event_for_the_loaded_version_is_a_no_op(runtime: Runtime) -> None:
    swapper = runtime.swapper
    loaded = swapper.slots.get(MODEL)
    swaps = counted("millrace_serving_swaps_total", model=MODEL, alias="production")
    fetched: list[str] = []
    store = swapper.store
    original_get = store.get
    store.get = lambda key: fetched.append(key) or original_get(key)  # type: ignore[method-assign]
    assert await swapper.apply(target(runtime, 1)) is Outcome.UNCHANGED
    assert swapper.slots.get(MODEL) is loaded
    assert fetched == []  # not even downloaded
    assert counted("millrace_serving_swaps_total", model=MODEL, alias="production") == swaps


async def test_a_good_version_after_a_failure_still_swaps_in(runtime: Runtime) -> None:
    swapper = runtime.swapper
    assert await swapper.apply(wrong_digest(runtime, target(runtime, 2))) is Outcome.FAILED
    assert await swapper.apply(target(runtime, 2)) is Outcome.SWAPPED
    assert swapper.slots.get(MODEL).version == 2
