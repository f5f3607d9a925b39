"""A model cannot read files on the host. An ONNX model whose weights name external data
(``logs/ingest.log``, an absolute path, a ``../`` path) would be filled, by onnxruntime, from
that file on the serving host, resolved against the working directory, and its predictions
would return the file. Serving refuses such a model when it loads it, whatever the working
directory: the old model keeps answering, the slot says why (``external_data``), the admin
route answers 422, and the file's bytes never show up in an answer."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from millrace_common.contracts import AliasTarget
from millrace_common.objectstore import sha256_hex
from millrace_serving.adapters.registry import MemoryRegistry
from millrace_serving.runtime import Runtime
from millrace_serving.swap import Outcome
from prometheus_client import REGISTRY

from tests.support.models import FACTORY_FEATURES, file_reading_model, instance
from tests.support.serving import MODEL, app_of, promote, serving_runtime, target

SECRET = b"ingest: token=0123456789abcdef"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The process's working directory, holding ``logs/ingest.log``."""
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / "logs" / "ingest.log").write_bytes(SECRET)
    monkeypatch.chdir(run)
    return run


def locations(workdir: Path) -> dict[str, str]:
    return {
        "relative": "logs/ingest.log",
        "absolute": str(workdir / "logs" / "ingest.log"),
        "dot-dot": "../run/logs/ingest.log",
    }


def leaked(probabilities: object) -> bool:
    """Whether one row of probabilities is the file, a byte per column."""
    row = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    return row.size == len(SECRET) and bytes(row.astype(np.uint8)) == SECRET


@pytest.mark.parametrize("kind", ["relative", "dot-dot"])
def test_onnxruntime_alone_would_serve_the_file(workdir: Path, kind: str) -> None:
    """The premise, so the refusals below are not vacuous: opened as onnxruntime opens
    bytes, the model's predictions are the file (an absolute path it refuses by itself)."""
    session = ort.InferenceSession(file_reading_model(locations(workdir)[kind], size=len(SECRET)))
    rows = np.zeros((1, len(FACTORY_FEATURES)), dtype=np.float32)
    _labels, probabilities = session.run(None, {"input": rows})
    assert leaked(probabilities)


def counted(reason: str) -> float:
    labels = {"model": MODEL, "reason": reason}
    return REGISTRY.get_sample_value("millrace_serving_swap_failures_total", labels) or 0.0


@pytest.mark.parametrize("kind", ["relative", "absolute", "dot-dot"])
async def test_a_model_reading_a_file_is_refused_and_the_old_one_answers(
    workdir: Path, tmp_path: Path, kind: str
) -> None:
    runtime = serving_runtime(tmp_path)
    await promote(runtime, 1)
    hostile = hostile_target(runtime, locations(workdir)[kind], version=2)
    before = counted("external_data")

    assert await runtime.swapper.apply(hostile) is Outcome.FAILED

    assert runtime.slots.get(MODEL).version == 1
    assert runtime.swapper.last_failure[(MODEL, "production")] == "external_data"
    assert runtime.swapper.divergence.describe() == [
        f"{MODEL}:production serves v1, the registry's target is v2 (external_data)"
    ]
    assert counted("external_data") == before + 1
    await assert_the_file_never_answers(runtime)


async def test_the_admin_route_refuses_it_with_the_reason(workdir: Path, tmp_path: Path) -> None:
    runtime = serving_runtime(tmp_path)
    await promote(runtime, 1)
    assert isinstance(runtime.registry, MemoryRegistry)
    runtime.registry.versions[(MODEL, 4)] = hostile_target(runtime, "logs/ingest.log", version=4)
    transport = httpx.ASGITransport(app=app_of(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
        answer = await client.post(f"/v1/admin/models/{MODEL}/load", json={"version": 4})
    assert answer.status_code == 422
    assert answer.json()["message"] == f"version 4 of '{MODEL}' could not be loaded: external_data"
    assert runtime.slots.find(MODEL, "v4") is None
    await assert_the_file_never_answers(runtime)


def hostile_target(runtime: Runtime, location: str, *, version: int) -> AliasTarget:
    """``version`` of MODEL as the file-reading model, described truthfully (its digest and
    size), under the factory model's schema (the same tensor names)."""
    data = file_reading_model(location, size=len(SECRET))
    runtime.swapper.store.put(f"models/{MODEL}/{version}/model.onnx", data)
    return target(runtime, version).model_copy(
        update={"sha256": sha256_hex(data), "size": len(data)}
    )


async def assert_the_file_never_answers(runtime: Runtime) -> None:
    transport = httpx.ASGITransport(app=app_of(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
        v1 = await client.post(f"/v1/models/{MODEL}/predict", json={"instances": [instance()]})
        v2 = await client.post(
            f"/v2/models/{MODEL}/infer",
            json={
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, len(FACTORY_FEATURES)],
                        "datatype": "FP32",
                        "data": [0.5] * len(FACTORY_FEATURES),
                    }
                ]
            },
        )
    assert v1.status_code == 200 and v1.json()["version"] == 1
    assert not leaked(v1.json()["predictions"][0]["probabilities"])
    assert v2.status_code == 200 and v2.json()["model_version"] == "1"
    assert not leaked(v2.json()["outputs"][1]["data"])
    assert SECRET not in v1.content + v2.content
