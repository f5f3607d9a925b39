"""ingest as a process against the real broker."""

from __future__ import annotations

import secrets

import httpx
import orjson
import pytest
from millrace_common.contracts import EVENT_TYPES, PREDICTIONS, RAW, PredictionLogged

from tests.support.edge import read_predictions
from tests.support.kafka import at_least, read_topic
from tests.support.records import RECORD, prediction_log

pytestmark = pytest.mark.integration


async def test_records_reach_raw_with_envelope_and_trace(ingest_url: str, broker: str) -> None:
    traceparent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    response = httpx.post(
        f"{ingest_url}/v1/datasets/machines/records",
        json={"records": [RECORD, {**RECORD, "entity_id": "m-2"}]},
        headers={"traceparent": traceparent},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 2 and body["trace_id"] == "ab" * 16
    records = await read_topic(
        broker,
        RAW,
        keep=lambda r: orjson.loads(r.value).get("event_id") in body["event_ids"],
        until=at_least(2),
        what="the two records",
    )
    assert {r.key for r in records} == {b"m-1", b"m-2"}
    headers = dict(records[0].headers)
    assert headers["traceparent"].decode().split("-")[1] == "ab" * 16
    assert set(headers) >= {"ce_id", "ce_type", "ce_source", "ce_time"}
    assert orjson.loads(records[0].value)["dataset"] == "machines"


def test_wrong_type_is_a_422_naming_the_field(ingest_url: str) -> None:
    response = httpx.post(
        f"{ingest_url}/v1/datasets/machines/records",
        json={"records": [RECORD, {**RECORD, "temperature": "hot"}]},
    )
    assert response.status_code == 422
    assert response.json()["field"] == "records[1].temperature"


def test_unknown_dataset_and_malformed_body(ingest_url: str) -> None:
    unknown = httpx.post(f"{ingest_url}/v1/datasets/nope/records", json={"records": [RECORD]})
    assert unknown.status_code == 404 and unknown.json()["field"] == "dataset"
    malformed = httpx.post(f"{ingest_url}/v1/datasets/machines/records", json={"rows": []})
    assert malformed.status_code == 422 and "records" in malformed.json()["message"]


async def test_prediction_logs_reach_predictions_keyed_by_model_with_the_envelope(
    ingest_url: str, broker: str
) -> None:
    tag = secrets.token_hex(4)
    logs = [prediction_log(f"{tag}-{n}", site="plant-x") for n in range(3)]
    traceparent = "00-" + "ef" * 16 + "-" + "cd" * 8 + "-01"
    response = httpx.post(
        f"{ingest_url}/v1/predictions",
        json={"predictions": logs},
        headers={"traceparent": traceparent},
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 3
    records = await read_predictions(
        broker, match=lambda v: v["request_id"].startswith(tag), until=3
    )
    assert len(records) == 3 and {r.key for r in records} == {b"machine-failure"}
    for record in records:
        event = PredictionLogged.model_validate_json(record.value)
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["ce_id"] == event.request_id  # the centre's key to drop a repeat
        assert headers["ce_type"] == EVENT_TYPES[PREDICTIONS]
        assert headers["traceparent"].split("-")[1] == "ef" * 16
        assert event.site == "plant-x" and event.version == 3


def test_a_malformed_prediction_log_is_a_422_naming_the_field(ingest_url: str) -> None:
    url = f"{ingest_url}/v1/predictions"
    good = prediction_log("p-1")
    wrong_type = httpx.post(url, json={"predictions": [good, {**good, "latency_ms": "fast"}]})
    assert wrong_type.status_code == 422
    assert wrong_type.json()["field"] == "predictions[1].latency_ms"
    missing = {k: v for k, v in good.items() if k != "request_id"}
    no_id = httpx.post(url, json={"predictions": [missing]})
    assert no_id.status_code == 422 and no_id.json()["field"] == "predictions[0].request_id"
    unknown = httpx.post(url, json={"predictions": [{**good, "sight": "typo"}]})
    assert unknown.status_code == 422 and unknown.json()["field"] == "predictions[0].sight"
    empty = httpx.post(url, json={"predictions": []})
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "predictions"
