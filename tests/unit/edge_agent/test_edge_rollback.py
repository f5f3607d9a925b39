"""Health-based rollback: a model that passes its warm-up but fails on what the site
really sends is rolled back to the last-known-good one, its failed predictions are
answered by that model inside the same request, and it is never adopted again — not
from the same manifest, not after a restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
from fastapi.testclient import TestClient
from millrace_cli.processes import wait_until
from millrace_common.contracts import AliasTarget
from millrace_common.objectstore import MemoryStore
from millrace_common.scoring import load_model
from millrace_edge_agent.app import bootstrap, create_app
from millrace_edge_agent.config import Settings
from millrace_edge_agent.runtime import Runtime
from millrace_edge_agent.status import describe
from onnx import TensorProto, helper

from tests.support.models import build_model, deploy_to_site, instance
from tests.support.predicting import predict_loop

SITE = "plant-health"
MODEL = "machine-failure"


def fails_on_real_inputs() -> bytes:
    """Looks up its probabilities in a one-row table by the first feature × 10: a row of
    zeros (the warm-up) reads row 0, a real reading (0.5 → row 5) is out of bounds."""
    table = helper.make_tensor("table", TensorProto.FLOAT, [1, 2], [0.7, 0.3])
    ten = helper.make_tensor("ten", TensorProto.FLOAT, [], [10.0])
    first = helper.make_tensor("first", TensorProto.INT64, [1], [0])
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["input", "first"], ["column"], axis=1),
            helper.make_node("Mul", ["column", "ten"], ["scaled"]),
            helper.make_node("Cast", ["scaled"], ["index2d"], to=TensorProto.INT64),
            helper.make_node("Squeeze", ["index2d", "first_axis"], ["index"]),
            helper.make_node("Gather", ["table", "index"], ["probabilities"], axis=0),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ],
        "fails-on-real-inputs",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 7])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
        [table, ten, first, helper.make_tensor("first_axis", TensorProto.INT64, [1], [1])],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    ).SerializeToString()


def publish(store: MemoryStore, version: int, data: bytes) -> AliasTarget:
    return deploy_to_site(store, site=SITE, name=MODEL, version=version, data=data)


def agent(store: MemoryStore, root: Path) -> Runtime:
    return bootstrap(
        Settings(
            site=SITE,
            cache_dir=str(root),
            poll_interval=3600,
            broker="",
            health_window=20,
            health_max_error_rate=0.1,
        ),
        store=store,
    )


def test_the_bad_model_passes_warm_up_but_fails_on_a_real_reading() -> None:
    data = fails_on_real_inputs()
    target = publish(MemoryStore(), 2, data)
    model = load_model(
        name=MODEL, version=2, data=data, sha256=target.sha256, schema=target.model_schema
    )  # the warm-up passes
    assert model.predict(np.zeros((1, 7), dtype="float32"))
    try:
        model.predict(np.full((1, 7), 0.5, dtype="float32"))
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error type
        assert "out of" in str(exc) or "indices" in str(exc).lower()
    else:
        raise AssertionError("the bad model scored a real reading")


def test_a_failing_model_is_rolled_back_with_zero_failed_predictions(tmp_path: Path) -> None:
    store = MemoryStore()
    publish(store, 1, build_model(seed=1).data)
    runtime = agent(store, tmp_path)
    with TestClient(create_app(runtime)) as client:
        with predict_loop(client, model=MODEL, ready="version 1 to load") as answers:
            bad = publish(store, 2, fails_on_real_inputs())
            assert runtime.syncer.sync_once() is True  # verified, warmed up, swapped in
            wait_until(
                lambda: (
                    runtime.syncer.probation is not None
                    and not runtime.syncer.probation.on_probation(MODEL, 2)
                    and runtime.slots.get(MODEL).version == 1
                ),
                timeout=10,
                what="version 2 to be rolled back",
            )
            answered_after_rollback = len(answers.versions)
            wait_until(
                lambda: len(answers.versions) > answered_after_rollback + 20,
                timeout=10,
                what="requests after the rollback",
            )
            runtime.syncer.status.etag = None  # read the same manifest again: still refused
            runtime.syncer.sync_once()
            assert runtime.slots.get(MODEL).version == 1
        status = client.get("/v1/status").json()
        metrics = client.get("/metrics").text
    assert answers.failures == []
    assert set(answers.versions) == {1}  # every answer came from a model that could give one
    assert "v2 rolled back to v1: health check failed" in status["last_error"]
    assert 'millrace_edge_rollbacks_total{model="machine-failure"} 1.0' in metrics
    retried = [
        line
        for line in metrics.splitlines()
        if line.startswith('millrace_edge_predictions_retried_total{model="machine')
    ]
    assert retried and float(retried[0].split()[-1]) >= 3
    current = orjson.loads((tmp_path / "current.json").read_bytes())
    assert [m["version"] for m in current["models"]] == [1]
    assert not (tmp_path / "models" / MODEL / "2").exists()
    refused = orjson.loads((tmp_path / "refused.json").read_bytes())["refused"]
    assert [(r["version"], r["sha256"]) for r in refused] == [(2, bad.sha256)]

    # a restart remembers: the same manifest is still not adopted
    again = agent(store, tmp_path)
    assert again.syncer.restore() == 1  # from disk: version 1
    again.syncer.sync_once()
    assert again.slots.get(MODEL).version == 1
    assert "rolled back" in (describe(again).last_error or "")


def test_a_healthy_model_passes_its_probation_and_stays(tmp_path: Path) -> None:
    store = MemoryStore()
    publish(store, 1, build_model(seed=1).data)
    runtime = agent(store, tmp_path)
    with TestClient(create_app(runtime)) as client:
        wait_until(
            lambda: client.get("/readyz").status_code == 200,
            timeout=10,
            what="version 1 to load",
            interval=0.05,
        )
        publish(store, 2, build_model(seed=2).data)
        runtime.syncer.sync_once()
        guard = runtime.syncer.probation
        assert guard is not None and guard.on_probation(MODEL, 2)
        for _ in range(20):
            response = client.post(f"/v1/models/{MODEL}/predict", json={"instances": [instance()]})
            assert response.status_code == 200 and response.json()["version"] == 2
        assert not guard.on_probation(MODEL, 2)
        assert runtime.slots.get(MODEL).version == 2
        assert describe(runtime).last_error is None


def test_an_unreadable_refused_list_does_not_stop_the_agent_serving(tmp_path: Path) -> None:
    store = MemoryStore()
    publish(store, 1, build_model(seed=1).data)
    assert agent(store, tmp_path).syncer.sync_once() is True
    (tmp_path / "refused.json").write_text("{ half a file")
    restarted = agent(store, tmp_path)
    assert restarted.syncer.restore() == 1
    assert restarted.slots.get(MODEL).version == 1
