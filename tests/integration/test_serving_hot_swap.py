"""Serving against a real broker, Postgres and S3: it loads production from the registry,
follows model-published, swaps while requests flow with zero errors, keeps the old model
when an artifact is corrupt, and looks up online features by entity id."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI, HTTPException
from millrace_cli.processes import ProcessSpec, Supervisor, free_port, script, wait_until
from millrace_common.contracts import (
    PREDICTIONS,
    AliasTarget,
    PredictionLogged,
)
from millrace_common.db import make_engine
from millrace_common.feature_store import metadata, online_rows
from millrace_common.objectstore import ObjectStore, open_store
from prometheus_client.parser import text_string_to_metric_families

from tests.support.kafka import Record, at_least, publish_model, read_topic
from tests.support.models import build_model, instance
from tests.support.predicting import predict_loop
from tests.support.waiting import until

pytestmark = pytest.mark.integration
MODEL = "machine-failure"


class FakeRegistry:
    """The two registry routes serving reads, served by uvicorn on a free port."""

    def __init__(self) -> None:
        self.targets: dict[tuple[str, str], AliasTarget] = {}
        self.names: set[str] = set()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning")
        )

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        def models() -> list[dict[str, object]]:
            names = self.names | {name for name, _ in self.targets}
            return [
                {
                    "name": n,
                    "aliases": {a: t.version for (m, a), t in self.targets.items() if m == n},
                }
                for n in sorted(names)
            ]

        @app.get("/v1/models/{name}/aliases/{alias}")
        def alias(name: str, alias: str) -> dict[str, object]:
            if (name, alias) not in self.targets:
                raise HTTPException(404, f"{name} has no alias {alias}")
            return self.targets[(name, alias)].model_dump(mode="json", by_alias=True)

        return app

    def __enter__(self) -> FakeRegistry:
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_until(lambda: self._server.started, timeout=10, what="the fake registry")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def upload(
    store: ObjectStore, name: str, version: int, *, seed: int, sha256: str | None = None
) -> AliasTarget:
    return build_model(seed=seed).upload(store, name=name, version=version, sha256=sha256)


def seed_online_store(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE SCHEMA IF NOT EXISTS "features"'))
    metadata.create_all(engine, tables=[online_rows])
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            online_rows.insert().values(
                feature_set="machine_health",
                entity_id="m-17",
                feature_set_version=1,
                event_time=now,
                features=instance(0.7),
                updated_at=now,
            )
        )
    engine.dispose()


def metric(base: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with FakeRegistry() as fake:
        yield fake


@pytest.fixture
def serving(
    tmp_path: Path, broker: str, database_url: str, object_store_url: str, registry: FakeRegistry
) -> Iterator[str]:
    seed_online_store(database_url)
    store = open_store(object_store_url)
    registry.targets[(MODEL, "production")] = upload(store, MODEL, 1, seed=1)
    registry.names.add("spindle")  # registered, nothing promoted yet
    port = free_port()
    supervisor = Supervisor(tmp_path / "logs")
    env = {
        "MILLRACE_BROKER": broker,
        "MILLRACE_DATABASE_URL": database_url,
        "MILLRACE_OBJECT_STORE": object_store_url,
        "MILLRACE_SERVING_PORT": str(port),
        "MILLRACE_SERVING_REGISTRY_URL": registry.url,
        "MILLRACE_SERVING_MODELS": "",
        "MILLRACE_SERVING_RESYNC_INTERVAL": "3600",
    }
    supervisor.start(
        ProcessSpec(
            name="serving",
            argv=[script("millrace-serving")],
            env=env,
            ready_url=f"http://127.0.0.1:{port}/readyz",
        ),
        timeout=120,
    )
    yield f"http://127.0.0.1:{port}"
    supervisor.stop_all()


async def test_hot_swap_under_load_with_zero_errors(
    serving: str, broker: str, object_store_url: str, registry: FakeRegistry
) -> None:
    store = open_store(object_store_url)
    url = f"{serving}/v1/models/{MODEL}/predict"
    assert httpx.post(url, json={"instances": [instance()]}).json()["version"] == 1
    client = httpx.Client(base_url=serving, timeout=10)
    with client, predict_loop(client, model=MODEL) as loop:
        await until(lambda: len(loop.results) > 20, timeout=60, what="requests on version 1")
        target = upload(store, MODEL, 2, seed=2)
        registry.targets[(MODEL, "production")] = target
        await publish_model(broker, target)
        await until(
            lambda: sum(v == 2 for _, v in loop.results) > 20,
            timeout=60,
            what="requests answered by version 2",
        )
    statuses = {status for status, _ in loop.results}
    versions = [v for _, v in loop.results]
    assert statuses == {200}
    assert versions == sorted(versions)  # once swapped, never back
    assert metric(serving, "millrace_serving_loaded_version", model=MODEL, alias="production") == 2


async def test_a_corrupt_artifact_keeps_the_old_model(
    serving: str, broker: str, object_store_url: str
) -> None:
    store = open_store(object_store_url)
    corrupt = upload(store, MODEL, 3, seed=3, sha256="0" * 64)
    await publish_model(broker, corrupt)
    await until(
        lambda: (
            metric(
                serving,
                "millrace_serving_swap_failures_total",
                model=MODEL,
                reason="sha256_mismatch",
            )
            == 1
        ),
        timeout=60,
        what="the swap failure to be counted",
    )
    response = httpx.post(f"{serving}/v1/models/{MODEL}/predict", json={"instances": [instance()]})
    assert response.status_code == 200 and response.json()["version"] == 1


async def test_a_model_promoted_after_start_up_is_loaded_from_its_event(
    serving: str, broker: str, object_store_url: str
) -> None:
    url = f"{serving}/v1/models/spindle/predict"
    assert httpx.post(url, json={"instances": [instance()]}).status_code == 404
    await publish_model(broker, upload(open_store(object_store_url), "spindle", 1, seed=4))
    await until(
        lambda: httpx.post(url, json={"instances": [instance()]}).status_code == 200,
        timeout=60,
        what="spindle to be served",
    )


async def test_entity_ids_invalid_bodies_and_prediction_logs(serving: str, broker: str) -> None:
    url = f"{serving}/v1/models/{MODEL}/predict"
    by_entity = httpx.post(url, json={"entity_ids": ["m-17"]})
    explicit = httpx.post(url, json={"instances": [instance(0.7)]})
    assert by_entity.status_code == 200
    assert by_entity.json()["predictions"] == explicit.json()["predictions"]
    missing = httpx.post(url, json={"entity_ids": ["m-17", "m-404"]})
    assert missing.status_code == 404 and "m-404" in missing.json()["message"]
    bad = dict(instance(), temperature_mean_10m="hot")
    invalid = httpx.post(url, json={"instances": [bad]})
    assert invalid.status_code == 422
    assert invalid.json()["field"] == "instances[0].temperature_mean_10m"
    assert await prediction_logged(broker, model=MODEL)


async def prediction_logged(broker: str, *, model: str) -> bool:
    def ours(record: Record) -> bool:
        log = PredictionLogged.model_validate_json(record.value)
        return log.model == model and log.version == 1

    found = await read_topic(
        broker, PREDICTIONS, keep=ours, until=at_least(1), what=f"a prediction log of {model} v1"
    )
    return bool(found)
