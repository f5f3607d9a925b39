"""Uploading a model of one's own: the registry takes the file as a multipart body, stores
it under its own key with the sha256 and size it computes, opens it to read its tensors,
and refuses what is not a model (or malformed samples) naming the part, storing nothing."""

from __future__ import annotations

import hashlib
import json

from fastapi.testclient import TestClient
from millrace_common.objectstore import MemoryStore, key_of

from tests.support.models import file_reading_model, fit

SAMPLES = {"rows": [[0.1] * 8, [0.2] * 8], "predictions": [0, 1]}


def test_an_upload_is_stored_under_the_registrys_key_with_its_own_digest(
    client: TestClient, store: MemoryStore
) -> None:
    model = fit(seed=3)
    answer = client.post(
        "/v1/models/own/uploads",
        files={
            "model": ("mine.onnx", model.data, "application/octet-stream"),
            "samples": ("samples.json", json.dumps(SAMPLES), "application/json"),
        },
        data={"description": "fitted in a notebook"},
    )
    assert answer.status_code == 201, answer.text
    upload = answer.json()
    assert upload["sha256"] == hashlib.sha256(model.data).hexdigest()
    assert (upload["size"], upload["filename"], upload["samples"]) == (
        len(model.data),
        "mine.onnx",
        2,
    )
    assert [i["name"] for i in upload["inputs"]] == ["input"]
    assert [o["name"] for o in upload["outputs"]] == ["label", "probabilities"]
    key = key_of(upload["artifact_uri"])
    assert key == f"models/own/uploads/{upload['upload_id']}/model.onnx"
    assert store.get(key) == model.data
    assert json.loads(store.get(key.replace("model.onnx", "samples.json")))["predictions"] == [0, 1]
    again = client.get(f"/v1/models/own/uploads/{upload['upload_id']}")
    assert again.status_code == 200 and again.json() == upload


def test_what_is_not_a_usable_model_is_refused_naming_the_part(
    client: TestClient, store: MemoryStore
) -> None:
    cases = {
        "model": [
            ("notes.onnx", b"certainly not protobuf"),
            ("empty.onnx", b""),
            ("peeks.onnx", file_reading_model("/etc/hostname", size=8)),
        ],
    }
    for name, data in cases["model"]:
        answer = client.post("/v1/models/own/uploads", files={"model": (name, data)})
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "model", answer.text
    bad_samples = [
        {"rows": [[0.1] * 8], "predictions": [0, 1]},
        {"rows": [], "predictions": []},
        {"rows": [[0.1] * 8], "predictions": [1], "probabilities": [[0.5, 0.5], [0.1, 0.9]]},
        "[1, 2",
    ]
    for samples in bad_samples:
        body = samples if isinstance(samples, str) else json.dumps(samples)
        answer = client.post(
            "/v1/models/own/uploads",
            files={"model": ("m.onnx", fit(seed=1).data), "samples": ("s.json", body)},
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "samples" and "samples" in answer.json()["message"]
    missing = client.post("/v1/models/own/uploads", data={"description": "no file"})
    assert missing.status_code == 422 and "model" in missing.text
    assert list(store.list("models/own/uploads")) == []


def test_an_upload_that_is_not_there_is_404(client: TestClient) -> None:
    answer = client.get(f"/v1/models/own/uploads/{'0' * 32}")
    assert answer.status_code == 404 and answer.json()["field"] == "upload_id"


def test_an_upload_has_the_upload_limit_not_the_json_one(client: TestClient) -> None:
    """A model file is larger than any JSON body: the uploads take
    MILLRACE_REGISTRY_MAX_UPLOAD_BYTES (512 MiB), every other route the 16 MiB limit."""
    big = b"\x00" * (17 * 1024 * 1024)  # over the JSON limit
    answer = client.post("/v1/models/own/uploads", files={"model": ("big.onnx", big)})
    assert answer.status_code == 422 and answer.json()["field"] == "model", answer.text
    assert "is not a usable ONNX model" in answer.json()["message"]
    refused = client.post(
        "/v1/models/own/versions", content=big, headers={"content-type": "application/json"}
    )
    assert refused.status_code == 413
