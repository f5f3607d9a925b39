"""features as a process: real broker, Postgres, S3. Bad input goes to the dlq while the
stream keeps flowing; a kill -9 mid-stream loses and doubles nothing."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
import yaml
from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer
from millrace_cli.processes import (
    ProcessSpec,
    Supervisor,
    free_port,
    script,
    tansu_spec,
    wait_until,
)
from millrace_cli.simulator import factory_records, take
from millrace_common.db import make_engine
from millrace_common.feature_store import offline_rows, online_rows
from millrace_common.project import load_project
from millrace_features.pipeline import RawMessage, decode, rows_for
from millrace_features.tables import snapshots

from tests.conftest import FACTORY

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(supervisor: Supervisor) -> Iterator[str]:
    """A broker of this test's own: the counts below are of everything on ``raw``."""
    port = free_port()
    spec = tansu_spec(port)
    spec.name = f"tansu-{port}"
    supervisor.start(spec)
    yield f"127.0.0.1:{port}"
    supervisor.stop(spec.name)


@pytest.fixture
def features(
    supervisor: Supervisor,
    broker: str,
    database_url: str,
    object_store_url: str,
    project_dir: Path,
    tmp_path: Path,
) -> Iterator[ProcessSpec]:
    port = free_port()
    spec = ProcessSpec(
        name=f"features-{port}",
        argv=[script("millrace-features")],
        env={
            "MILLRACE_BROKER": broker,
            "MILLRACE_DATABASE_URL": database_url,
            "MILLRACE_OBJECT_STORE": object_store_url,
            "MILLRACE_PROJECT": str(project_dir),
            "MILLRACE_FEATURES_PORT": str(port),
            "MILLRACE_FEATURES_DATA_DIR": str(tmp_path),
            # each test its own consumer group and table changelog
            "MILLRACE_FEATURES_APP_ID": f"features-it-{port}",
            "MILLRACE_FEATURES_RETRAIN_CHECK_SECONDS": "0.5",
        },
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )
    supervisor.start(spec, timeout=120)
    yield spec
    supervisor.stop(spec.name)


def _count(database_url: str, table: sa.Table) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
    finally:
        engine.dispose()


def _produce(broker: str, values: list[bytes], keys: list[bytes | None]) -> None:
    """A plain third-party client, no Millrace code."""
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    for key, value in zip(keys, values, strict=True):
        producer.send("raw", key=key, value=value)
    producer.flush()
    producer.close()


def _records(count: int, seed: int) -> list[dict]:  # type: ignore[type-arg]
    return [{"dataset": "machines", **r} for r in take(factory_records(seed=seed), count)]


async def _dead_letters(broker: str, want: int) -> list[dict]:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer("dlq", bootstrap_servers=broker, auto_offset_reset="earliest")
    await consumer.start()
    letters: list[dict] = []  # type: ignore[type-arg]
    try:
        async with asyncio.timeout(60):
            while len(letters) < want:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    letters.extend(orjson.loads(r.value) for r in batch)
    finally:
        await consumer.stop()
    return letters


async def test_bad_messages_go_to_dlq_and_the_rest_flows(
    features: ProcessSpec, broker: str, database_url: str
) -> None:
    marker = f"unknown-{features.name}"
    good = _records(30, seed=1)
    values = (
        [orjson.dumps(r) for r in good[:10]]
        + [b"not json {", orjson.dumps({**good[0], "dataset": marker})]
        + [orjson.dumps(r) for r in good[10:]]
    )
    _produce(broker, values, [b"m"] * len(values))
    wait_until(lambda: _count(database_url, offline_rows) == 30, timeout=60, what="30 feature rows")
    letters = [x for x in await _dead_letters(broker, 2) if x["consumer"] == "features"]
    reasons = {letter["error"].split(":")[0] for letter in letters}
    assert "not JSON" in reasons and any(marker in x["error"] for x in letters)
    assert any(base64.b64decode(x["original"]) == b"not json {" for x in letters)
    assert _count(database_url, online_rows) == len({r["entity_id"] for r in good})


def _expected_features(project_dir: Path, records: list[dict]) -> dict[str, dict]:  # type: ignore[type-arg]
    """What an uninterrupted worker computes: windows depend only on each entity's order."""
    project = load_project(project_dir)
    windows: dict = {}  # type: ignore[type-arg]
    expected = {}
    for offset, record in enumerate(records):
        message = RawMessage(value=orjson.dumps(record), topic="raw", partition=0, offset=offset)
        for computed in rows_for(project, decode(project, message), message, windows):
            expected[computed.row.event_id] = computed.row.features
    return expected


def _stored_features(database_url: str) -> dict[str, dict]:  # type: ignore[type-arg]
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(offline_rows.c.event_id, offline_rows.c.features))
            return {row.event_id: row.features for row in rows}
    finally:
        engine.dispose()


def test_kill_9_mid_stream_loses_and_doubles_nothing(
    features: ProcessSpec, supervisor: Supervisor, broker: str, database_url: str, project_dir: Path
) -> None:
    records = [{**r, "event_id": f"k9-{i}"} for i, r in enumerate(_records(3000, seed=2))]
    _produce(
        broker,
        [orjson.dumps(r) for r in records[:1500]],
        [r["entity_id"].encode() for r in records[:1500]],
    )
    wait_until(
        lambda: _count(database_url, offline_rows) > 200,
        timeout=60,
        what="the stream to be under way",
    )
    supervisor.kill(features.name)
    _produce(
        broker,
        [orjson.dumps(r) for r in records[1500:]],
        [r["entity_id"].encode() for r in records[1500:]],
    )
    supervisor.start(features, timeout=120)
    wait_until(
        lambda: _count(database_url, offline_rows) >= 3000,
        timeout=120,
        what="all 3000 feature rows after the restart",
    )
    assert _count(database_url, offline_rows) == 3000
    # the restored windows are whole: rows after the restart equal an uninterrupted run's
    assert _stored_features(database_url) == _expected_features(project_dir, records)


class TestScheduledRetraining:
    """``retrain: {every: 4s}`` and no row count: a snapshot and its train request once
    the interval has passed with new labelled rows, none while nothing new arrives."""

    @pytest.fixture
    def project_dir(self, tmp_path: Path) -> Path:
        spec = yaml.safe_load((FACTORY / "millrace.yaml").read_text())
        spec["models"]["machine-failure"]["retrain"] = {
            "every_n_labelled_rows": None,
            "every": "4s",
        }
        folder = tmp_path / "project"
        folder.mkdir()
        (folder / "millrace.yaml").write_text(yaml.safe_dump(spec))
        return folder

    async def test_a_snapshot_per_interval_only_when_new_labelled_rows_came(
        self, features: ProcessSpec, broker: str, database_url: str
    ) -> None:
        records = [r for r in _records(400, seed=3) if r.get("failure_within_1h") is not None]
        _produce(broker, [orjson.dumps(r) for r in records[:200]], [b"m"] * 200)
        wait_until(
            lambda: _snapshotted(database_url) == 200,
            timeout=90,
            what="a snapshot holding the 200 labelled rows",
        )
        taken = _count(database_url, snapshots)
        time.sleep(10)  # more than two intervals with nothing new: nothing is due
        assert _count(database_url, snapshots) == taken

        _produce(broker, [orjson.dumps(r) for r in records[200:]], [b"m"] * len(records[200:]))
        wait_until(
            lambda: _snapshotted(database_url) == len(records),
            timeout=90,
            what="a snapshot holding every labelled row",
        )
        requests = await _train_requests(broker, want=_count(database_url, snapshots))
        assert {r["model"] for r in requests} == {"machine-failure"}
        assert all(r["reason"].startswith("schedule: every 4s (") for r in requests)
        assert requests[-1]["snapshot"]["rows"] == len(records)


def _snapshotted(database_url: str) -> int:
    """The labelled rows the newest snapshot held."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.max(snapshots.c.labelled_rows))) or 0)
    finally:
        engine.dispose()


async def _train_requests(broker: str, want: int) -> list[dict]:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        "train-requests", bootstrap_servers=broker, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[dict] = []  # type: ignore[type-arg]
    try:
        async with asyncio.timeout(60):
            while len(found) < want:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    found.extend(orjson.loads(r.value) for r in batch)
    finally:
        await consumer.stop()
    return found
