"""No input a client can send is a 500 or scored when it should not be: a value its
datatype cannot hold (out of range, null, not finite, 1e39 that float32 would make inf),
an input sent twice, on the Open Inference Protocol's JSON and binary tensors and on the
v1 route alike, is a 422 whose message names the input and what is wrong with it; the
values a datatype does hold, up to its bounds, are scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.support.models import FACTORY_FEATURES, instance
from tests.support.serving import MODEL, app_of, promote, serving_runtime, v2_body

INFER = f"/v2/models/{MODEL}/infer"
PREDICT = f"/v1/models/{MODEL}/predict"
JSON = {"content-type": "application/json"}
WIDTH = len(FACTORY_FEATURES)


@pytest.fixture
async def client(tmp_path: Path) -> TestClient:
    runtime = serving_runtime(tmp_path)
    await promote(runtime, 1)
    return TestClient(app_of(runtime), raise_server_exceptions=False)


def one_row(datatype: str, first: Any) -> dict[str, Any]:
    """A whole-input tensor of one row: ``first``, then zeros."""
    data = [first] + [0] * (WIDTH - 1)
    return {"inputs": [{"name": "input", "shape": [1, WIDTH], "datatype": datatype, "data": data}]}


def v2_error(answer: Any) -> str:
    assert answer.status_code == 422, answer.text
    assert list(answer.json()) == ["error"]
    return str(answer.json()["error"])


@pytest.mark.parametrize(
    ("datatype", "value", "says"),
    [
        ("INT8", 1200, "1200 is out of range for INT8 (-128 to 127)"),
        ("INT8", -129, "-129 is out of range for INT8"),
        ("INT16", 40000, "40000 is out of range for INT16"),
        ("UINT8", 1200, "1200 is out of range for UINT8 (0 to 255)"),
        ("UINT8", -5, "-5 is out of range for UINT8"),
        ("UINT16", -1, "-1 is out of range for UINT16"),
        ("INT32", 2**40, f"{2**40} is out of range for INT32"),
        ("INT64", 2**70, "is out of range for INT64"),
        ("UINT64", -1, "-1 is out of range for UINT64"),
        ("INT8", 1.5, "1.5 is not an integer"),
        ("FP32", None, "data[0] is null"),
        ("INT64", None, "data[0] is null"),
        ("FP32", 1e39, "1e+39 is out of range for FP32"),
        ("FP16", 70000.0, "70000.0 is out of range for FP16"),
        ("FP64", 1e300, "1e+300 is out of range for FP32, the datatype the model takes"),
        ("FP32", "1.0", "'1.0' is not a number"),
    ],
)
def test_a_value_its_datatype_cannot_hold_is_a_422_naming_the_input(
    client: TestClient, datatype: str, value: Any, says: str
) -> None:
    error = v2_error(client.post(INFER, content=json.dumps(one_row(datatype, value)), headers=JSON))
    assert error.startswith("inputs[0].data: input 'input': data[0]")
    assert says in error


@pytest.mark.parametrize(
    ("datatype", "value"),
    [
        ("INT8", 127),
        ("INT8", -128),
        ("UINT8", 255),
        ("INT64", -(2**63)),
        ("UINT64", 2**64 - 1),
        ("INT32", 7.0),
        ("FP32", 3.4e38),
        ("FP16", 65504.0),
    ],
)
def test_a_value_at_its_datatypes_bounds_is_scored(
    client: TestClient, datatype: str, value: Any
) -> None:
    answer = client.post(INFER, content=json.dumps(one_row(datatype, value)), headers=JSON)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "1"


def test_a_null_deep_in_nested_data_is_named_by_its_place(client: TestClient) -> None:
    body = v2_body(3)
    body["inputs"][0]["data"][2] = [0.5] * (WIDTH - 1) + [None]  # type: ignore[index]
    error = v2_error(client.post(INFER, json=body))
    assert error == f"inputs[0].data: input 'input': data[{3 * WIDTH - 1}] is null"


def test_binary_tensors_that_are_not_finite_are_refused(client: TestClient) -> None:
    for datatype, dtype, bad in (
        ("FP32", np.float32, np.nan),
        ("FP16", np.float16, np.inf),
        ("FP64", np.float64, -np.inf),
    ):
        tensor = np.zeros((1, WIDTH), dtype=dtype)
        tensor[0, 3] = bad
        raw = tensor.tobytes()
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, WIDTH],
                        "datatype": datatype,
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ]
            }
        ).encode()
        answer = client.post(
            INFER,
            content=header + raw,
            headers={"inference-header-content-length": str(len(header))},
        )
        assert f"input 'input': data[3] = {float(bad)} is not a finite number" in v2_error(answer)


def test_an_input_sent_twice_is_refused(client: TestClient) -> None:
    twice = v2_body()
    twice["inputs"].append(twice["inputs"][0])  # type: ignore[attr-defined]
    assert v2_error(client.post(INFER, json=twice)) == (
        "inputs[1].name: input 'input' is sent twice (also as inputs[0])"
    )
    columns = [
        {"name": f, "shape": [1], "datatype": "FP32", "data": [0.5]} for f in FACTORY_FEATURES
    ]
    feature_twice = {"inputs": [*columns, columns[2]]}
    assert f"input '{FACTORY_FEATURES[2]}' is sent twice" in v2_error(
        client.post(INFER, json=feature_twice)
    )
    both = {"inputs": [v2_body()["inputs"][0], columns[0]]}  # type: ignore[index]
    assert "already carries every feature" in v2_error(client.post(INFER, json=both))


def test_a_per_feature_tensor_beyond_float32_is_named(client: TestClient) -> None:
    columns = [
        {"name": f, "shape": [2], "datatype": "FP64", "data": [0.5, 0.5]} for f in FACTORY_FEATURES
    ]
    columns[4]["data"] = [0.5, -1e200]
    error = v2_error(client.post(INFER, json={"inputs": columns}))
    assert error.startswith(f"inputs[4].data: input '{FACTORY_FEATURES[4]}': data[1] = -1e+200")


def test_binary_data_size_must_be_a_count_of_the_bytes_sent(client: TestClient) -> None:
    for size in (-4, True, "28"):
        body = one_row("FP32", 0.5)
        body["inputs"][0]["parameters"] = {"binary_data_size": size}
        answer = client.post(INFER, content=json.dumps(body), headers=JSON)
        assert v2_error(answer).startswith("inputs[0].parameters.binary_data_size:")


def v1_error(answer: Any) -> tuple[str, str]:
    assert answer.status_code == 422, answer.text
    return answer.json()["field"], answer.json()["message"]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("null", "feature 'speed_last' is null"),
        ("NaN", "feature 'speed_last' is not a finite number"),
        ("Infinity", "feature 'speed_last' is not a finite number"),
        ("-1e400", "feature 'speed_last' is not a finite number"),
        ("1e39", "feature 'speed_last' is out of range (the model takes float32)"),
        ("1" + "0" * 400, "feature 'speed_last' is out of range"),
        ('"fast"', "feature 'speed_last' must be a number"),
        ("true", "feature 'speed_last' must be a number"),
    ],
)
def test_v1_refuses_the_same_values_naming_the_field(
    client: TestClient, value: str, says: str
) -> None:
    row = json.dumps(instance() | {"speed_last": "HERE"}).replace('"HERE"', value)
    raw = f'{{"instances": [{json.dumps(instance())}, {row}]}}'
    field, message = v1_error(client.post(PREDICT, content=raw, headers=JSON))
    assert field == "instances[1].speed_last"
    assert message.startswith(says)


def test_a_refused_request_leaves_the_model_answering(client: TestClient) -> None:
    assert client.post(INFER, json=one_row("INT64", 2**70)).status_code == 422
    nan = json.dumps({"instances": [instance() | {"speed_last": float("nan")}]})
    assert client.post(PREDICT, content=nan, headers=JSON).status_code == 422
    answer = client.post(INFER, json=v2_body(2))
    assert answer.status_code == 200 and answer.json()["outputs"][0]["shape"] == [2]
