"""Millrace end to end, driven only as a user drives it: produce, predict, watch models."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from kafka import KafkaProducer
from millrace_cli.platform import edge_agent_spec
from millrace_cli.processes import ProcessSpec, script, wait_until
from millrace_cli.simulator import factory_records, take
from millrace_common.db import make_engine
from millrace_common.feature_store import offline_rows

from tests.support.platform import RETRAIN_EVERY, Platform
from tests.support.predicting import predict_loop

pytestmark = pytest.mark.e2e
MODEL = "machine-failure"
SERVICES = ("ingest", "registry", "serving", "features", "trainer")


@pytest.fixture(scope="module")
def records() -> Iterator[dict]:  # type: ignore[type-arg]
    return factory_records(machines=20, seed=11)


def _produce_with_kafka_python(platform: Platform, batch: list[dict]) -> None:  # type: ignore[type-arg]
    """A plain third-party Kafka client: JSON values, no Millrace headers or code."""
    producer = KafkaProducer(bootstrap_servers=platform.config.broker, acks="all")
    for record in batch:
        producer.send(
            "raw",
            key=record["entity_id"].encode(),
            value=orjson.dumps({"dataset": "machines", **record}),
        )
    producer.flush()
    producer.close()


def _post_to_ingest(platform: Platform, batch: list[dict], size: int = 200) -> None:  # type: ignore[type-arg]
    for start in range(0, len(batch), size):
        response = httpx.post(
            f"{platform.url('ingest')}/v1/datasets/machines/records",
            json={"records": batch[start : start + size]},
            timeout=30,
        )
        assert response.status_code == 202, response.text


def _feature_rows(platform: Platform) -> int:
    engine = make_engine(platform.config.database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(offline_rows)) or 0)
    finally:
        engine.dispose()


def _production(platform: Platform) -> int | None:
    response = httpx.get(f"{platform.url('registry')}/v1/models/{MODEL}/aliases/production")
    return response.json()["version"] if response.status_code == 200 else None


def _versions(platform: Platform) -> list[dict]:  # type: ignore[type-arg]
    response = httpx.get(f"{platform.url('registry')}/v1/models/{MODEL}/versions")
    return response.json() if response.status_code == 200 else []


def _predict(url: str, body: dict) -> httpx.Response:  # type: ignore[type-arg]
    return httpx.post(f"{url}/v1/models/{MODEL}/predict", json=body, timeout=10)


def test_every_service_answers_health_readiness_and_metrics(platform: Platform) -> None:
    for service in SERVICES:
        for path in ("/healthz", "/readyz", "/metrics"):
            response = httpx.get(f"{platform.url(service)}{path}", timeout=5)
            assert response.status_code == 200, f"{service}{path}: {response.text}"


def test_records_become_features_and_a_production_model(platform: Platform, records) -> None:  # type: ignore[no-untyped-def]
    batch = take(records, RETRAIN_EVERY)
    with_ids = [{**r, "event_id": f"kafka-{i}"} for i, r in enumerate(batch[:1200])]
    _produce_with_kafka_python(platform, with_ids)
    _produce_with_kafka_python(platform, with_ids[:100])  # a redelivery: same event ids
    _post_to_ingest(platform, batch[1200:])
    wait_until(
        lambda: _feature_rows(platform) >= RETRAIN_EVERY,
        timeout=180,
        what=f"{RETRAIN_EVERY} feature rows",
    )
    assert _feature_rows(platform) == RETRAIN_EVERY

    wait_until(lambda: _production(platform) == 1, timeout=300, what="v1 in production")
    version = httpx.get(f"{platform.url('registry')}/v1/models/{MODEL}/versions/1").json()
    lineage = version["lineage"]
    assert lineage["snapshot"]["uri"].startswith("s3://")
    assert len(lineage["snapshot"]["sha256"]) == 64
    assert lineage["snapshot"]["rows"] >= RETRAIN_EVERY
    assert len(lineage["project"]["git_commit"]) == 40
    assert len(lineage["platform"]["git_commit"]) == 40
    assert lineage["environment"]["python"] and len(lineage["environment"]["lock_sha256"]) == 64
    assert lineage["model_spec"]["params"] == {"n_estimators": 40, "max_depth": 6}
    assert 0 <= version["metrics"]["f1"] <= 1


def test_serving_answers_with_version_1(platform: Platform) -> None:
    wait_until(
        lambda: _predict(platform.url("serving"), {"entity_ids": ["m-001"]}).status_code == 200,
        timeout=60,
        what="serving to load v1",
    )
    by_entity = _predict(platform.url("serving"), {"entity_ids": ["m-001", "m-002"]}).json()
    assert (by_entity["model"], by_entity["version"], by_entity["alias"]) == (
        MODEL,
        1,
        "production",
    )
    assert len(by_entity["predictions"]) == 2
    missing = _predict(platform.url("serving"), {"entity_ids": ["no-such-machine"]})
    assert missing.status_code == 404 and "no-such-machine" in missing.text


def test_version_2_is_trained_and_swapped_without_failed_requests(
    platform: Platform, records
) -> None:  # type: ignore[no-untyped-def]
    client = httpx.Client(base_url=platform.url("serving"), timeout=10)
    body = {"entity_ids": ["m-003"]}
    with client, predict_loop(client, model=MODEL, body=body) as loop:
        _post_to_ingest(platform, take(records, RETRAIN_EVERY))
        wait_until(lambda: len(_versions(platform)) >= 2, timeout=300, what="version 2")
        v2 = httpx.get(f"{platform.url('registry')}/v1/models/{MODEL}/versions/2").json()
        if _production(platform) == 2:
            wait_until(lambda: loop.versions.count(2) > 20, timeout=60, what="serving to answer v2")
        else:
            audit = httpx.get(f"{platform.url('registry')}/v1/models/{MODEL}/audit").json()
            assert any(e.get("to_version") == 2 and "not promoted" in e["reason"] for e in audit), (
                audit
            )
            assert v2["status"] == "ready"
    assert set(loop.statuses) == {200}, loop.statuses
    assert sum(loop.statuses.values()) > 50


def test_trace_id_follows_a_record_to_its_feature_row(platform: Platform) -> None:
    trace = "5e" * 16
    record = {
        "entity_id": "m-trace",
        "ts": "2026-03-01T00:00:00Z",
        "temperature": 70.0,
        "vibration": 0.3,
        "pressure": 3.0,
        "speed": 1400.0,
    }
    response = httpx.post(
        f"{platform.url('ingest')}/v1/datasets/machines/records",
        json={"records": [record]},
        headers={"traceparent": f"00-{trace}-{'1f' * 8}-01"},
    )
    event_id = response.json()["event_ids"][0]
    engine = make_engine(platform.config.database_url)

    def row_trace() -> str | None:
        with engine.connect() as conn:
            return conn.scalar(
                sa.select(offline_rows.c.trace_id).where(offline_rows.c.event_id == event_id)
            )

    wait_until(lambda: row_trace() is not None, timeout=60, what="the traced feature row")
    engine.dispose()
    assert row_trace() == trace

    def traced(name: str) -> list[dict[str, object]]:
        text = (platform.supervisor.log_dir / f"{name}.log").read_text()
        return [
            orjson.loads(line)
            for line in text.splitlines()
            if line.startswith("{") and trace in line
        ]

    for name in ("ingest", "features"):
        # features logs its batch once the batch is stored, published and committed: the
        # row can be read a moment before the line is written
        wait_until(
            partial(lambda service: bool(traced(service)), name),
            timeout=60,
            what=f"a JSON log line of {name} carrying the trace id",
        )
        assert all(line["service"] == name for line in traced(name))


def test_a_version_trained_here_is_reproduced_by_the_cli(platform: Platform) -> None:
    """Done-when 3: ``millrace models reproduce`` on v1, as a user runs it."""
    env = {
        **os.environ,
        "MILLRACE_OBJECT_STORE": platform.config.object_store,
        "MILLRACE_PROJECT": str(platform.config.project),
        "MILLRACE_REGISTRY_URL": platform.url("registry"),
    }
    result = subprocess.run(
        [
            script("millrace"),
            "models",
            "reproduce",
            MODEL,
            "1",
            "--json",
            "--registry",
            platform.url("registry"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = _json_document(result.stdout)
    v1 = httpx.get(f"{platform.url('registry')}/v1/models/{MODEL}/versions/1").json()
    assert report["reproduced"] is True and report["snapshot"]["verified"] is True
    assert report["snapshot"]["sha256"] == v1["lineage"]["snapshot"]["sha256"]
    assert report["metrics"] and all(
        m["match"] and m["original"] == m["reproduced"] for m in report["metrics"].values()
    )
    assert report["metrics"]["f1"]["original"] == v1["metrics"]["f1"]
    onnx = report["onnx"]
    assert onnx["match"] is True and onnx["label_mismatches"] == 0
    assert onnx["max_probability_diff"] <= onnx["tolerance"]
    assert onnx["holdout_rows"] == v1["lineage"]["snapshot"]["holdout_rows"] > 0


def _json_document(output: str) -> Any:
    """The CLI's JSON answer (skipping any log line printed before it)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line == "{")
    document, _ = json.JSONDecoder().raw_decode("\n".join(lines[start:]))
    return document


def test_edge_agent_serves_production_offline_and_after_restart(platform: Platform) -> None:
    site = "site-e2e"
    response = httpx.put(
        f"{platform.url('registry')}/v1/sites/{site}/deployments/{MODEL}",
        json={"alias": "production"},
    )
    assert response.status_code in (200, 201), response.text
    production = _production(platform)
    # the agent knows only the object store: no broker, no registry
    spec: ProcessSpec = edge_agent_spec(platform.config, site=site)
    spec.env["MILLRACE_BROKER"] = ""
    platform.supervisor.start(spec)
    edge = platform.url("edge-agent")
    instance = {
        "instances": [
            {
                "temperature_mean_10m": 80.0,
                "temperature_max_10m": 85.0,
                "vibration_mean_10m": 0.8,
                "vibration_std_10m": 0.1,
                "pressure_mean_10m": 3.0,
                "speed_last": 1300.0,
                "readings_10m": 20.0,
            }
        ]
    }
    wait_until(
        lambda: _predict(edge, instance).status_code == 200,
        timeout=60,
        what="the edge agent to serve",
    )
    assert _predict(edge, instance).json()["version"] == production

    platform.supervisor.stop(spec.name)
    platform.s3.stop()  # the site loses the centre entirely
    platform.supervisor.start(spec)
    answer = _predict(edge, instance)
    assert answer.status_code == 200 and answer.json()["version"] == production


def test_a_connected_edge_agent_forwards_records_and_reports_heartbeats(platform: Platform) -> None:
    """Records POSTed to a site's agent reach the centre's offline feature store, and the
    registry shows the site's heartbeat (the agent as ``millrace dev`` starts it)."""
    from millrace_cli.processes import free_port  # a second agent beside the first

    site = "site-e2e-connected"
    port = free_port()
    spec = edge_agent_spec(platform.config, site=site, name="edge-agent-connected", port=port)
    platform.supervisor.start(spec)
    edge = f"http://127.0.0.1:{port}"
    batch = [
        {**r, "entity_id": f"edge-{r['entity_id']}"}
        for r in take(factory_records(machines=3, seed=99), 30)
    ]
    response = httpx.post(
        f"{edge}/v1/datasets/machines/records", json={"records": batch}, timeout=30
    )
    assert response.status_code == 202, response.text
    event_ids = set(response.json()["event_ids"])

    def arrived() -> int:
        engine = make_engine(platform.config.database_url)
        try:
            with engine.connect() as conn:
                return int(
                    conn.scalar(
                        sa.select(sa.func.count(sa.distinct(offline_rows.c.event_id))).where(
                            offline_rows.c.event_id.in_(event_ids)
                        )
                    )
                    or 0
                )
        finally:
            engine.dispose()

    wait_until(
        lambda: arrived() == len(event_ids),
        timeout=120,
        what="the agent's records in the offline feature store",
    )

    def reported() -> dict | None:  # type: ignore[type-arg]
        answer = httpx.get(f"{platform.url('registry')}/v1/sites/{site}/status")
        return answer.json() if answer.status_code == 200 else None

    wait_until(
        lambda: (reported() or {}).get("queue_depth") == 0,
        timeout=60,
        what="a heartbeat after the queue drained",
    )
    status = reported()
    assert status is not None and status["drops"] == 0 and status["history"]
    platform.supervisor.stop(spec.name)
