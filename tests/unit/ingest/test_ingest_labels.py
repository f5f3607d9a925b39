"""Labels over REST: each names what it labels (a request id, or the dataset's own entity
and time fields) and the dataset's label fields; reaches ``labels`` as ``LabelObserved``;
a bad one is a 422 naming its field, and a resent one keeps its event id."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from millrace_common.contracts import LABELS, LabelObserved
from millrace_ingest.app import bootstrap, create_app
from millrace_ingest.config import Settings

from tests.support.fakes import FakeProducer
from tests.support.ingest import CUSTOMERS_SPEC as SPEC


def client(tmp_path: Path) -> tuple[TestClient, FakeProducer]:
    (tmp_path / "millrace.yaml").write_text(SPEC)
    producer = FakeProducer()
    runtime = bootstrap(
        Settings(project=str(tmp_path), database_url="", auth="off"),
        producer=producer,  # type: ignore[arg-type]
    )
    runtime.started = True
    return TestClient(create_app(runtime)), producer


def test_labels_by_request_or_by_the_datasets_entity_and_time_reach_the_topic(
    tmp_path: Path,
) -> None:
    http, producer = client(tmp_path)
    body = {
        "labels": [
            {"request_id": "r-1", "churned": 1},
            {"customer_id": "c-7", "as_of": "2026-11-02T00:00:00Z", "churned": 0},
        ]
    }
    answer = http.post("/v1/datasets/customers/labels", json=body)
    assert answer.status_code == 202, answer.text
    again = http.post("/v1/datasets/customers/labels", json=body)
    assert again.json()["event_ids"] == answer.json()["event_ids"]  # a resend is recognised
    sent = [
        LabelObserved.model_validate_json(v) for topic, _k, v in producer.sent if topic == LABELS
    ]
    first, second = sent[:2]
    assert (first.request_id, first.field, first.value, first.entity_id) == (
        "r-1",
        "churned",
        1,
        None,
    )
    assert (second.entity_id, second.ts.isoformat(), second.value) == (  # type: ignore[union-attr]
        "c-7",
        "2026-11-02T00:00:00+00:00",
        0,
    )


def test_a_bad_label_is_a_422_naming_each_field_and_nothing_is_sent(tmp_path: Path) -> None:
    http, producer = client(tmp_path)
    answer = http.post(
        "/v1/datasets/customers/labels",
        json={
            "labels": [
                {"request_id": "r-1", "churned": "yes"},
                {"customer_id": "c-7", "churned": 1},
                {"request_id": "r-2", "tenure": 3},
            ]
        },
    )
    assert answer.status_code == 422
    fields = {e["field"] for e in answer.json()["errors"]}
    assert {"labels[0].churned", "labels[1]", "labels[2].tenure"} <= fields, answer.text
    assert producer.sent == []
    assert http.post("/v1/datasets/nope/labels", json={"labels": [{}]}).status_code == 404
