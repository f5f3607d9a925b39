"""The monitor's rows on SQLite (millrace dev's database): written once however often a
batch is replayed, duplicate labels counted, old rows purged, and the report's route."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from millrace_common.contracts import LabelObserved, PredictionLogged
from millrace_common.objectstore import MemoryStore
from millrace_registry.app import Runtime
from millrace_registry.monitor_intake import label_row, prediction_rows

from tests.support.registry import registration

NOW = datetime.now(UTC).replace(microsecond=0)


def logged(request_id: str, *, at: datetime, label: int) -> PredictionLogged:
    return PredictionLogged(
        request_id=request_id,
        model="m",
        version=1,
        alias="production",
        inputs_sha256="0" * 64,
        outputs=[{"label": label, "probabilities": [1.0 - label, float(label)]}],
        latency_ms=1.0,
        at=at,
    )


def label(event_id: str, request_id: str, value: int, *, at: datetime) -> LabelObserved:
    return LabelObserved(
        event_id=event_id,
        dataset="machines",
        field="failure_within_1h",
        value=value,
        request_id=request_id,
        at=at,
    )


def test_a_replayed_batch_writes_nothing_twice_and_repeated_labels_are_counted(
    runtime: Runtime, client: TestClient
) -> None:
    assert client.post("/v1/models/m/versions", json=registration("r1", 0.8)).status_code == 201
    predictions = [
        row
        for i in range(4)
        for row in prediction_rows(logged(f"q{i}", at=NOW - timedelta(minutes=i), label=i % 2))
    ]
    labels = [label_row(label(f"l{i}", f"q{i}", 1, at=NOW)) for i in range(4)]
    assert runtime.monitoring.record(predictions=predictions, labels=labels) == 4
    assert runtime.monitoring.record(predictions=predictions, labels=labels[:2]) == 0

    report = client.get("/v1/models/m/monitoring", params={"window": "1d"}).json()
    [entry] = report["versions"]
    assert (entry["predictions"], entry["labelled"], entry["metrics"]["accuracy"]) == (4, 4, 0.5)
    assert report["labels"] == {
        "received": 4,
        "matched": 4,
        "unmatched": 0,
        "late": 0,
        "duplicate": 2,
    }


def test_rows_older_than_the_retention_are_purged(runtime: Runtime, client: TestClient) -> None:
    assert client.post("/v1/models/m/versions", json=registration("r1", 0.8)).status_code == 201
    old, new = NOW - timedelta(days=40), NOW - timedelta(minutes=1)
    runtime.monitoring.record(
        predictions=[
            *prediction_rows(logged("old", at=old, label=1)),
            *prediction_rows(logged("new", at=new, label=1)),
        ],
        labels=[
            label_row(label("l-old", "old", 1, at=old)),
            label_row(label("l-new", "new", 1, at=new)),
        ],
    )
    runtime.monitoring.purge(before=NOW - timedelta(days=30))
    report = client.get(
        "/v1/models/m/monitoring", params={"since": (NOW - timedelta(days=60)).isoformat()}
    ).json()
    assert [(e["predictions"], e["labelled"]) for e in report["versions"]] == [(1, 1)]


def test_the_route_names_a_bad_query_and_an_unknown_model(client: TestClient) -> None:
    assert client.get("/v1/models/nobody/monitoring").status_code == 404
    assert client.post("/v1/models/m/versions", json=registration("r1", 0.8)).status_code == 201
    bad = client.get("/v1/models/m/monitoring", params={"window": "fortnight"})
    assert bad.status_code == 422 and bad.json()["field"] == "window"
    backwards = client.get(
        "/v1/models/m/monitoring",
        params={"since": NOW.isoformat(), "until": (NOW - timedelta(hours=1)).isoformat()},
    )
    assert backwards.status_code == 422 and backwards.json()["field"] == "since"


def test_finished_days_are_archived_once_as_parquet_with_their_labels(
    runtime: Runtime, client: TestClient, store: MemoryStore
) -> None:
    assert client.post("/v1/models/m/versions", json=registration("r1", 0.8)).status_code == 201
    day = datetime(2026, 11, 30, tzinfo=UTC)
    runtime.monitoring.record(
        predictions=[
            *prediction_rows(logged("a", at=day + timedelta(hours=1), label=1)),
            *prediction_rows(logged("b", at=day + timedelta(hours=23), label=0)),
            *prediction_rows(logged("c", at=day + timedelta(days=1, hours=2), label=1)),
        ],
        labels=[label_row(label("l-a", "a", 1, at=day + timedelta(hours=3)))],
    )
    archive = runtime.archive
    # the 30th is over for 24 hours at midnight of the 2nd; the 1st is not yet
    assert archive.run(now=day + timedelta(days=1, hours=23)) == []
    written = archive.run(now=day + timedelta(days=2))
    assert written == ["monitoring/m/predictions/day=2026-11-30.parquet"]
    table = pq.read_table(io.BytesIO(store.get(written[0])))
    rows = table.select(["request_id", "version", "label", "truth", "truth_event_id"]).to_pylist()
    assert rows == [
        {"request_id": "a", "version": 1, "label": 1.0, "truth": 1.0, "truth_event_id": "l-a"},
        {"request_id": "b", "version": 1, "label": 0.0, "truth": None, "truth_event_id": None},
    ]
    assert archive.run(now=day + timedelta(days=2, hours=1)) == []  # written once
    assert archive.run(now=day + timedelta(days=3)) == [
        "monitoring/m/predictions/day=2026-12-01.parquet"
    ]


def test_served_inputs_are_measured_against_the_versions_training_snapshot(
    runtime: Runtime, client: TestClient, store: MemoryStore
) -> None:
    rng = np.random.default_rng(4)
    snapshot = pa.table({"a": rng.normal(0, 1, 2000), "b": rng.normal(5, 1, 2000)})
    buffer = io.BytesIO()
    pq.write_table(snapshot, buffer)
    store.put("datasets/fs/snap.parquet", buffer.getvalue())
    lineage = {"snapshot": {"uri": store.uri("datasets/fs/snap.parquet")}}
    body = registration("r1", 0.8, lineage=lineage)
    assert client.post("/v1/models/m/versions", json=body).status_code == 201
    # "a" served as trained; "b" shifted by two standard deviations
    served = [
        PredictionLogged(
            request_id=f"q{i}",
            model="m",
            version=1,
            alias="production",
            inputs_sha256="0" * 64,
            outputs=[{"label": 1, "probabilities": [0.0, 1.0]}],
            latency_ms=1.0,
            at=NOW - timedelta(minutes=1),
            inputs=[[float(rng.normal(0, 1)), float(rng.normal(7, 1))]],
        )
        for i in range(500)
    ]
    runtime.monitoring.record(
        predictions=[row for log in served for row in prediction_rows(log)], labels=[]
    )
    drift = client.get("/v1/models/m/monitoring").json()["drift"]["1"]
    assert list(drift) == ["b", "a"]  # highest first
    assert drift["b"] > 1.0 and drift["a"] < 0.1
    page = client.get("/ui/models/m/monitoring").text
    assert "PSI of the inputs served" in page and "b: PSI" in page
