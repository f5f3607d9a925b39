"""Ingest writes a record to ``raw`` under its dataset's own names for the entity and the
time (``customer_id``, ``as_of``), so the features worker takes it: written as
``entity_id``/``ts``, every record of such a dataset was dead-lettered."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from millrace_common.project import load_project
from millrace_common.records import validate_record
from millrace_ingest.app import bootstrap, create_app
from millrace_ingest.config import Settings

from tests.support.fakes import FakeProducer
from tests.support.ingest import CUSTOMERS_SPEC as SPEC


def test_records_reach_raw_under_the_datasets_own_names(tmp_path: Path) -> None:
    (tmp_path / "millrace.yaml").write_text(SPEC)
    producer = FakeProducer()
    runtime = bootstrap(
        Settings(project=str(tmp_path), database_url="", auth="off"),
        producer=producer,  # type: ignore[arg-type]
    )
    runtime.started = True  # the producer in memory is connected: no lifespan here
    record = {"customer_id": "c-1", "as_of": "2026-11-02T00:00:00Z", "tenure": 3}
    answer = TestClient(create_app(runtime)).post(
        "/v1/datasets/customers/records",
        json={"records": [{**record, "monthly_charges": 70, "churned": 0}]},
    )
    assert answer.status_code == 202, answer.text
    [value] = producer.values
    assert value["customer_id"] == "c-1" and value["as_of"] == "2026-11-02T00:00:00+00:00"
    assert "entity_id" not in value and "ts" not in value
    dataset = load_project(tmp_path).dataset("customers")
    taken = validate_record(dataset, value)  # as the features worker checks it
    assert (taken.entity_id, taken.values, taken.labels) == (
        "c-1",
        {"tenure": 3, "monthly_charges": 70.0},
        {"churned": 0},
    )
