"""Trust and safe swap: a corrupt model, one whose tensors read files on the site's host
(external data: relative to the working directory, absolute, or ``../``), and one that
fails its warm-up are each refused and reported, while the running model keeps answering
every local request and the file's bytes never show up in an answer."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from fastapi.testclient import TestClient
from millrace_cli.processes import wait_until
from millrace_common.objectstore import MemoryStore
from millrace_common.onnx_guard import external_data_locations
from millrace_edge_agent.app import bootstrap, create_app
from millrace_edge_agent.config import Settings
from millrace_edge_agent.status import describe
from onnx import TensorProto, helper

from tests.support.models import build_model, deploy_to_site, file_reading_model, instance
from tests.support.predicting import predict_loop

SITE = "plant-1"
MODEL = "machine-failure"


def with_external_data(data: bytes, location: str) -> bytes:
    model = onnx.load_from_string(data)
    tensor = model.graph.initializer.add()
    tensor.name, tensor.data_type = "weights", TensorProto.FLOAT
    tensor.dims.append(4)
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return model.SerializeToString()


def failing_warm_up() -> bytes:
    """Right input and output names, but a reshape that fails on any 7-feature row."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3])
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["input", "shape"], ["probabilities"]),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ],
        "broken",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 7])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3]),
        ],
        [shape],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    ).SerializeToString()


def publish(store: MemoryStore, version: int, data: bytes, *, sha256: str | None = None) -> None:
    deploy_to_site(store, site=SITE, name=MODEL, version=version, data=data, sha256=sha256)


def test_the_guard_lists_external_data_locations() -> None:
    data = build_model(seed=1).data
    assert external_data_locations(data) == []
    assert external_data_locations(with_external_data(data, "../secret.bin")) == ["../secret.bin"]


def test_bad_models_are_refused_while_the_old_one_answers_every_request(tmp_path: Path) -> None:
    store = MemoryStore()
    publish(store, 1, build_model(seed=1).data)
    settings = Settings(site=SITE, cache_dir=str(tmp_path), poll_interval=3600)
    runtime = bootstrap(settings, store=store)
    with TestClient(create_app(runtime)) as client:
        with predict_loop(client, model=MODEL, ready="version 1 to load") as answers:
            bad = [
                (2, build_model(seed=2).data, "f" * 64, "sha256 mismatch"),
                (
                    3,
                    with_external_data(build_model(seed=3).data, "/etc/hostname"),
                    None,
                    "reads tensor data from files ('/etc/hostname')",
                ),
                (4, failing_warm_up(), None, "warm-up failed"),
            ]
            for version, data, sha256, reason in bad:
                publish(store, version, data, sha256=sha256)
                runtime.syncer.sync_once()
                assert reason in (describe(runtime).last_error or "")
                assert runtime.slots.get(MODEL).version == 1
                assert not (tmp_path / "models" / MODEL / str(version)).exists()
                assert answers.wait_for_more(4) == [1] * 4  # the old model goes on answering
            publish(store, 5, build_model(seed=5).data)
            runtime.syncer.sync_once()
            wait_until(lambda: answers.versions[-1:] == [5], timeout=10, what="version 5 to answer")
    assert answers.failures == []
    assert len(answers.versions) > 10 and set(answers.versions) == {1, 5}
    assert answers.versions == sorted(answers.versions)  # never back to 1 once 5 answered
    metrics = TestClient(create_app(runtime)).get("/metrics").text
    assert (
        'millrace_edge_swap_failures_total{model="machine-failure",reason="integrity"}' in metrics
    )


def test_a_model_reading_a_file_on_the_host_is_refused_wherever_the_agent_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = b"site token=0123456789abcdef"
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / "logs" / "ingest.log").write_bytes(secret)
    monkeypatch.chdir(run)  # onnxruntime resolves a model's external data against it
    hostile = {
        2: "logs/ingest.log",
        3: str(run / "logs" / "ingest.log"),
        4: "../run/logs/ingest.log",
    }
    store = MemoryStore()
    publish(store, 1, build_model(seed=1).data)
    settings = Settings(site=SITE, cache_dir=str(tmp_path / "site"), poll_interval=3600)
    runtime = bootstrap(settings, store=store)
    with TestClient(create_app(runtime)) as client:
        runtime.syncer.sync_once()
        for version, location in hostile.items():
            publish(store, version, file_reading_model(location, size=len(secret)))
            runtime.syncer.sync_once()
            error = client.get("/v1/status").json()["last_error"]
            assert error == (
                f"{MODEL} v{version}: the model reads tensor data from files ({location!r}): "
                "a Millrace artifact must be one self-contained file"
            )
            assert runtime.slots.get(MODEL).version == 1
            assert not (tmp_path / "site" / "models" / MODEL / str(version)).exists()
            answer = client.post(f"/v1/models/{MODEL}/predict", json={"instances": [instance()]})
            assert answer.status_code == 200 and answer.json()["version"] == 1
            assert len(answer.json()["predictions"][0]["probabilities"]) == 2
            assert secret not in answer.content
