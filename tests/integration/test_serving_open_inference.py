"""Done-when 1: Triton's own HTTP client (``tritonclient[http]``, unmodified, written for
the Open Inference Protocol) talks to Millrace serving over real HTTP: health, model
metadata and readiness, inference with JSON tensors and with its default binary tensors,
by alias and by pinned version, and the protocol's error body; and the extensions the
server advertises answer the client's calls for them: the repository index, each model's
configuration (read from its session) and its inference statistics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from millrace_serving.runtime import Runtime
from tritonclient.utils import InferenceServerException

from tests.support.identity import key_file
from tests.support.models import FACTORY_FEATURES, build_model
from tests.support.serving import MODEL, app_of, promote, served, serving_runtime

pytestmark = pytest.mark.integration


@pytest.fixture
async def runtime(tmp_path: Path) -> Runtime:
    runtime = serving_runtime(tmp_path)
    await promote(runtime, 1)
    await runtime.alias_follower.load_version(name=MODEL, version=3)  # pinned beside production
    return runtime


@pytest.fixture
def client(runtime: Runtime) -> Iterator[triton.InferenceServerClient]:
    with served(app_of(runtime)) as url:
        client = triton.InferenceServerClient(url=url)
        yield client
        client.close()


def rows(n: int = 4) -> np.ndarray:
    return np.random.default_rng(7).normal(size=(n, len(FACTORY_FEATURES))).astype(np.float32)


def expected(seed: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(build_model(seed=seed).data)
    label, probabilities = session.run(None, {"input": x})
    return label, probabilities


def infer(
    client: triton.InferenceServerClient, x: np.ndarray, *, binary: bool, version: str = ""
) -> triton.InferResult:
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary) for name in ("label", "probabilities")
    ]
    return client.infer(MODEL, [tensor], model_version=version, outputs=outputs)


def test_health_and_model_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_model_ready(MODEL)
    assert client.is_model_ready(MODEL, model_version="3")
    assert not client.is_model_ready(MODEL, model_version="2")
    assert not client.is_model_ready("nope")
    meta = client.get_model_metadata(MODEL)
    assert meta["name"] == MODEL and sorted(meta["versions"]) == ["1", "3"]
    assert meta["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, len(FACTORY_FEATURES)]}
    ]
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("label", "INT64"),
        ("probabilities", "FP32"),
    ]


@pytest.mark.parametrize("binary", [False, True], ids=["json-tensors", "binary-tensors"])
def test_infer_gives_the_sessions_outputs(
    client: triton.InferenceServerClient, binary: bool
) -> None:
    x = rows()
    result = infer(client, x, binary=binary)
    label, probabilities = expected(1, x)
    assert result.get_response()["model_version"] == "1"
    assert result.as_numpy("label").dtype == np.int64
    np.testing.assert_array_equal(result.as_numpy("label"), label)
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-6)


def test_defaults_of_the_client_work(client: triton.InferenceServerClient) -> None:
    """No outputs named, binary input: the client asks for every output in binary."""
    x = rows(3)
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer(MODEL, [tensor])
    np.testing.assert_array_equal(result.as_numpy("label"), expected(1, x)[0])


def test_a_pinned_version_answers_by_its_route(client: triton.InferenceServerClient) -> None:
    x = rows()
    result = infer(client, x, binary=False, version="3")
    assert result.get_response()["model_version"] == "3"
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected(3, x)[1], rtol=1e-6)


def test_errors_reach_the_client_with_the_field_named(client: triton.InferenceServerClient) -> None:
    wrong = triton.InferInput("input", [2, 3], "FP32")
    wrong.set_data_from_numpy(np.zeros((2, 3), dtype=np.float32), binary_data=False)
    with pytest.raises(InferenceServerException, match=r"inputs\[0\]\.shape"):
        client.infer(MODEL, [wrong])
    with pytest.raises(InferenceServerException, match="no loaded version 2"):
        infer(client, rows(), binary=False, version="2")
    with pytest.raises(InferenceServerException, match="'nope'"):
        client.infer("nope", [wrong])


def test_an_unknown_model_is_a_clean_error_in_the_client(
    client: triton.InferenceServerClient,
) -> None:
    """The client reads the protocol's ``{"error": ...}``: the server's sentence, not a
    complaint about decoding the body."""
    tensor = triton.InferInput("input", [1, len(FACTORY_FEATURES)], "FP32")
    tensor.set_data_from_numpy(rows(1))
    for call in (lambda: client.infer("nope", [tensor]), lambda: client.get_model_metadata("nope")):
        with pytest.raises(InferenceServerException) as raised:
            call()
        assert raised.value.status() == "404"
        assert raised.value.message() == "model 'nope' has no loaded 'production' version"


def test_a_refused_key_is_a_clean_error_in_the_client(tmp_path: Path) -> None:
    runtime = serving_runtime(tmp_path, **key_file(tmp_path).settings())
    with served(app_of(runtime)) as url:
        client = triton.InferenceServerClient(url=url)
        try:
            with pytest.raises(InferenceServerException) as raised:
                client.get_model_metadata(MODEL, headers={"x-api-key": "guess"})
            assert raised.value.status() == "401"
            assert raised.value.message().startswith("these credentials are not known")
        finally:
            client.close()


def test_the_server_advertises_only_what_it_serves(client: triton.InferenceServerClient) -> None:
    extensions = client.get_server_metadata()["extensions"]
    assert sorted(extensions) == ["binary_tensor_data", "model_configuration", "statistics"]


def test_the_repository_index_lists_the_loaded_versions(
    client: triton.InferenceServerClient,
) -> None:
    assert client.get_model_repository_index() == [
        {"name": MODEL, "version": "1", "state": "READY", "reason": ""},
        {"name": MODEL, "version": "3", "state": "READY", "reason": ""},
    ]


def test_a_models_config_is_read_from_its_session(client: triton.InferenceServerClient) -> None:
    config = client.get_model_config(MODEL)
    assert (config["name"], config["platform"], config["max_batch_size"]) == (
        MODEL,
        "onnxruntime_onnx",
        0,
    )
    assert config["input"] == [
        {"name": "input", "data_type": "TYPE_FP32", "dims": [-1, len(FACTORY_FEATURES)]}
    ]
    assert config["output"] == [
        {"name": "label", "data_type": "TYPE_INT64", "dims": [-1]},
        {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [-1, 2]},
    ]
    assert config["version_policy"] == {"specific": {"versions": [1, 3]}}
    assert config["parameters"]["alias"] == {"string_value": "production"}
    pinned = client.get_model_config(MODEL, model_version="3")
    assert pinned["parameters"]["alias"] == {"string_value": "v3"}
    with pytest.raises(InferenceServerException) as raised:
        client.get_model_config(MODEL, model_version="2")
    assert raised.value.status() == "404"


def test_statistics_count_what_each_version_answered(
    client: triton.InferenceServerClient,
) -> None:
    for binary in (False, True):
        infer(client, rows(4), binary=binary)
    wrong = triton.InferInput("input", [2, 3], "FP32")
    wrong.set_data_from_numpy(np.zeros((2, 3), dtype=np.float32), binary_data=False)
    with pytest.raises(InferenceServerException):
        client.infer(MODEL, [wrong])
    infer(client, rows(1), binary=False, version="3")

    [production] = client.get_inference_statistics(MODEL, model_version="1")["model_stats"]
    assert (production["name"], production["version"]) == (MODEL, "1")
    assert production["inference_count"] == 8 and production["execution_count"] == 2
    stats = production["inference_stats"]
    assert stats["success"]["count"] == 2 and stats["success"]["ns"] > 0
    assert stats["fail"]["count"] == 1
    assert stats["compute_infer"]["count"] == 2
    assert 0 < stats["compute_infer"]["ns"] <= stats["success"]["ns"]
    assert production["last_inference"] > 0
    assert [(b["batch_size"], b["compute_infer"]["count"]) for b in production["batch_stats"]] == [
        (4, 2)
    ]
    every = client.get_inference_statistics()["model_stats"]
    assert [(s["version"], s["inference_count"]) for s in every] == [("1", 8), ("3", 1)]
    assert [s["version"] for s in client.get_inference_statistics(MODEL)["model_stats"]] == [
        "1",
        "3",
    ]
    with pytest.raises(InferenceServerException) as raised:
        client.get_inference_statistics("nope")
    assert (raised.value.status(), raised.value.message()) == (
        "404",
        "model 'nope' has no loaded version",
    )
