"""The trainer end to end: a snapshot in S3, a train request on the broker, a real registry
(in-process under uvicorn) on Postgres; versions come out registered with lineage."""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaConsumer
from millrace_common.contracts import (
    DLQ,
    EVENT_TYPES,
    TRAIN_REQUESTS,
    DeadLetter,
    SnapshotRef,
    TrainRequest,
)
from millrace_common.messaging import Envelope, Producer, ensure_topics
from millrace_common.objectstore import ObjectStore, key_of, open_store, sha256_hex
from millrace_common.project import load_project
from millrace_registry.config import Settings as RegistrySettings
from millrace_trainer.app import bootstrap as trainer_bootstrap
from millrace_trainer.config import Settings as TrainerSettings
from millrace_trainer.runtime import Runtime

from tests.support_registry import running_registry

pytestmark = pytest.mark.integration
MODEL = "machine-failure"


def factory_snapshot(features: list[str], rows: int = 800, seed: int = 5) -> bytes:
    """Machines that fail when hot and shaking, in the snapshot layout the trainer reads."""
    rng = np.random.default_rng(seed)
    temperature = rng.normal(75, 6, rows)
    vibration = rng.gamma(2.0, 0.25, rows)
    risk = 0.25 * (temperature - 75) + 4.0 * (vibration - 0.5) + rng.normal(0, 0.8, rows)
    values = {
        "temperature_mean_10m": temperature,
        "temperature_max_10m": temperature + rng.gamma(2.0, 1.0, rows),
        "vibration_mean_10m": vibration,
        "vibration_std_10m": rng.gamma(2.0, 0.05, rows),
        "pressure_mean_10m": rng.normal(3.0, 0.2, rows),
        "speed_last": rng.normal(1500, 50, rows),
        "readings_10m": rng.integers(5, 11, rows).astype(float),
    }
    start = datetime(2026, 1, 1, tzinfo=UTC)
    table = pa.table(
        {
            "event_id": [f"e-{i}" for i in range(rows)],
            "entity_id": [f"m-{i % 12}" for i in range(rows)],
            "event_time": pa.array(
                [start + timedelta(minutes=i) for i in range(rows)],
                type=pa.timestamp("us", tz="UTC"),
            ),
            **{name: values[name] for name in features},
            "label": (risk > 1.0).astype(float),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.fixture
def registry_url(broker: str, database_url: str, object_store_url: str) -> Iterator[str]:
    settings = RegistrySettings(
        broker=broker, database_url=database_url, object_store=object_store_url, relay_interval=0.1
    )
    with running_registry(settings) as url:
        yield url


@pytest.fixture
async def trainer(
    broker: str, object_store_url: str, project_dir: Path, registry_url: str
) -> AsyncIterator[Runtime]:
    settings = TrainerSettings(
        broker=broker,
        object_store=object_store_url,
        project=str(project_dir),
        registry_url=registry_url,
        group_id=f"trainer-{secrets.token_hex(3)}",
    )
    runtime = trainer_bootstrap(settings)
    await runtime.start()
    yield runtime
    await runtime.stop()


@pytest.fixture
def snapshot(object_store_url: str, project_dir: Path) -> tuple[ObjectStore, SnapshotRef]:
    store = open_store(object_store_url)
    features = load_project(project_dir).feature_set("machine_health").feature_names
    data = factory_snapshot(features)
    key = f"datasets/machine_health/{secrets.token_hex(4)}.parquet"
    store.put(key, data)
    return store, SnapshotRef(
        uri=store.uri(key),
        sha256=sha256_hex(data),
        rows=800,
        cutoff=datetime(2026, 1, 2, tzinfo=UTC),
        feature_set="machine_health",
        feature_set_version=1,
    )


async def send_request(broker: str, request: TrainRequest) -> None:
    await ensure_topics(broker, [TRAIN_REQUESTS, DLQ])
    producer = Producer(broker, source="test")
    await producer.start()
    try:
        await producer.send(
            TRAIN_REQUESTS,
            request,
            key=request.model,
            envelope=Envelope.new(type=EVENT_TYPES[TRAIN_REQUESTS], source="test"),
        )
    finally:
        await producer.stop()


def train_request(snapshot: SnapshotRef, request_id: str) -> TrainRequest:
    return TrainRequest(
        request_id=request_id,
        model=MODEL,
        snapshot=snapshot,
        reason="integration test",
        requested_by="pytest",
        requested_at=datetime.now(UTC),
    )


async def versions_when(
    registry_url: str, count: int, *, timeout: float = 120
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=registry_url, timeout=10) as client:
        async with asyncio.timeout(timeout):
            while True:
                response = await client.get(f"/v1/models/{MODEL}/versions")
                if response.status_code == 200 and len(response.json()) >= count:
                    return response.json()  # type: ignore[no-any-return]
                await asyncio.sleep(0.2)


async def dead_letter_for(broker: str, request_id: str, *, timeout: float = 60) -> DeadLetter:
    consumer = AIOKafkaConsumer(
        DLQ, bootstrap_servers=broker, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            while True:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for rec in records:
                        letter = DeadLetter.model_validate_json(rec.value)
                        original = base64.b64decode(letter.original).decode(errors="replace")
                        if letter.consumer == "trainer" and request_id in original:
                            return letter
    finally:
        await consumer.stop()


async def test_train_request_becomes_a_registered_production_model(
    trainer: Runtime, registry_url: str, broker: str, snapshot: tuple[ObjectStore, SnapshotRef]
) -> None:
    store, ref = snapshot
    await send_request(broker, train_request(ref, "req-1"))
    [first] = await versions_when(registry_url, 1)
    assert (first["version"], first["status"], first["promoted"]) == (1, "ready", True)
    assert first["aliases"] == ["champion", "production"]
    assert first["metrics"]["f1"] > 0.5 and first["champion_metrics"] is None
    assert first["lineage"]["snapshot"]["sha256"] == ref.sha256
    assert first["lineage"]["train_request"]["request_id"] == "req-1"
    assert sha256_hex(store.get(key_of(first["artifact_uri"]))) == first["sha256"]
    async with httpx.AsyncClient(base_url=registry_url) as client:
        production = (await client.get(f"/v1/models/{MODEL}/aliases/production")).json()
    assert production["version"] == 1 and production["schema"]["inputs"][0]["name"] == "input"

    # the same data again: the champion is scored on the same holdout and is not beaten
    await send_request(broker, train_request(ref, "req-2"))
    second = (await versions_when(registry_url, 2))[1]
    assert second["champion_version"] == 1
    assert second["champion_metrics"] == pytest.approx(second["metrics"])
    assert second["promoted"] is False and second["aliases"] == ["challenger"]
    assert second["reason"].startswith("not promoted: f1")


async def test_replays_are_no_ops_and_tampered_snapshots_are_dead_lettered(
    trainer: Runtime, registry_url: str, broker: str, snapshot: tuple[ObjectStore, SnapshotRef]
) -> None:
    _, ref = snapshot
    await send_request(broker, train_request(ref, "req-a"))
    await versions_when(registry_url, 1)
    tampered = train_request(ref.model_copy(update={"sha256": "0" * 64}), "req-bad")
    for request in (train_request(ref, "req-a"), tampered, train_request(ref, "req-b")):
        await send_request(broker, request)
    # one key, one partition: once req-b is registered the replay and the bad one were seen
    versions = await versions_when(registry_url, 2)
    assert [(v["version"], v["request_id"]) for v in versions] == [(1, "req-a"), (2, "req-b")]
    letter = await dead_letter_for(broker, "req-bad")
    assert "sha256 mismatch" in letter.error
