"""The centre's feature engine at the site: records taken in become the project's feature
rows in the transaction that queues them, windows live in the queue file (a reopen, as
after a kill -9, resumes them exactly; what falls out of the keep horizon is pruned), and
``entity_ids`` predictions read the site's latest row per entity."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from millrace_cli.processes import wait_until
from millrace_cli.simulator import factory_records, take
from millrace_common.feature_engine import Event, FeatureEngine, Row
from millrace_common.objectstore import MemoryStore
from millrace_common.project import Project, load_project
from millrace_common.records import validate_record
from millrace_edge_agent.adapters.queue import Queues
from millrace_edge_agent.app import bootstrap, create_app
from millrace_edge_agent.config import Settings
from millrace_edge_agent.intake import RecordIntake
from millrace_edge_agent.site_features import SiteFeatures

from tests.support.models import FACTORY_FEATURES, deploy_to_site
from tests.support.paths import FACTORY

SITE = "plant-1"
MODEL = "machine-failure"


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project(FACTORY)


def stream(count: int, *, seed: int = 3, machines: int = 6) -> list[dict[str, Any]]:
    """Factory records with event ids, some out of order, some sent twice (one of those
    with other values: the first one counts)."""
    records = [
        {**r, "event_id": f"e-{i}"}
        for i, r in enumerate(take(factory_records(machines=machines, seed=seed), count))
    ]
    rng = random.Random(seed)
    for i in rng.sample(range(count - 20), count // 10):  # a reading arrives late
        late = records.pop(i)
        records.insert(i + rng.randint(machines, 3 * machines), late)
    for i in rng.sample(range(count), count // 20):  # a producer's retry
        records.insert(min(count, i + rng.randint(1, 40)), dict(records[i]))
    records.insert(count // 2, {**records[3], "temperature": 999.0})  # same id, other values
    return records


def expected(project: Project, records: list[dict[str, Any]]) -> list[Row]:
    """What one uninterrupted engine with nothing recorded makes of them, one at a time."""
    engine = FeatureEngine(project)
    dataset = project.dataset("machines")
    return [
        row
        for r in records
        for row in engine.rows([Event(validate_record(dataset, r), r["event_id"])])
    ]


def open_site(
    path: Path, project: Project, *, max_windows: int = 1000
) -> tuple[Queues, RecordIntake]:
    queues = Queues.open(path, max_rows=100_000, max_age=365 * 86400.0, policy="reject-new")
    features = SiteFeatures(project=project, tables=queues.features, max_windows=max_windows)
    return queues, RecordIntake(queue=queues.records, project=project, features=features)


def batches(records: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


def comparable(rows: list[Row]) -> list[tuple[Any, ...]]:
    return [(r.event_id, r.entity_id, r.event_time, r.features, r.label) for r in rows]


async def test_rows_equal_the_engine_s_and_a_reopen_resumes_the_windows(
    tmp_path: Path, project: Project
) -> None:
    records = stream(600)
    path = tmp_path / "queue.sqlite3"
    made: list[Row] = []
    queues, intake = open_site(path, project)
    for batch in batches(records[:300], 37):
        made += (await intake.accept(dataset="machines", records=batch)).rows
    # no close: the next agent opens the file as a kill -9 left it
    _queues, intake = open_site(path, project)
    for batch in batches(records[300:], 50):
        made += (await intake.accept(dataset="machines", records=batch)).rows
    assert comparable(made) == comparable(expected(project, records))
    queues.close()


async def test_windows_evicted_from_memory_come_back_whole(
    tmp_path: Path, project: Project
) -> None:
    records = stream(400, machines=8)
    queues, intake = open_site(tmp_path / "queue.sqlite3", project, max_windows=2)
    made: list[Row] = []
    for batch in batches(records, 3):
        made += (await intake.accept(dataset="machines", records=batch)).rows
    assert comparable(made) == comparable(expected(project, records))
    queues.close()


async def test_one_reading_per_event_id_and_only_within_the_keep_horizon(
    tmp_path: Path, project: Project
) -> None:
    records = stream(600, machines=3)  # 200 readings a machine, 30 s apart
    queues, intake = open_site(tmp_path / "queue.sqlite3", project)
    for batch in batches(records, 100):
        await intake.accept(dataset="machines", records=batch)
    entities, readings = queues.features.sizes()
    keep = 2 * 600  # twice the longest window (10m) behind each machine's newest reading
    assert entities == 3
    assert readings == 3 * (keep // 30 + 1)  # the rest was pruned; each id once
    await intake.accept(dataset="machines", records=records[-5:])  # sent again
    assert queues.features.sizes() == (3, readings)
    queues.close()


async def test_a_refused_batch_leaves_no_reading_and_the_windows_follow_the_file(
    tmp_path: Path, project: Project
) -> None:
    records = stream(60, machines=2)
    queues = Queues.open(
        tmp_path / "queue.sqlite3", max_rows=40, max_age=365 * 86400.0, policy="reject-new"
    )
    features = SiteFeatures(project=project, tables=queues.features, max_windows=10)
    intake = RecordIntake(queue=queues.records, project=project, features=features)
    first = (await intake.accept(dataset="machines", records=records[:30])).rows
    with pytest.raises(Exception, match="queue is full"):
        await intake.accept(dataset="machines", records=records[30:])
    assert queues.features.sizes()[1] == len({r["event_id"] for r in records[:30]})
    queues.records.ack([q.seq for q in queues.records.peek(100)])  # the centre took them
    rest = (await intake.accept(dataset="machines", records=records[30:])).rows
    assert comparable(first + rest) == comparable(expected(project, records))
    queues.close()


def test_entity_id_predictions_are_answered_from_the_site_s_rows(tmp_path: Path) -> None:
    store = MemoryStore()
    deploy_to_site(store, site=SITE, name=MODEL)
    settings = Settings(
        site=SITE, cache_dir=str(tmp_path), poll_interval=0.05, project=str(FACTORY)
    )
    records = [
        {**r, "event_id": f"p-{i}"}
        for i, r in enumerate(take(factory_records(machines=3, seed=5), 30))
    ]
    with TestClient(create_app(bootstrap(settings, store=store))) as client:
        wait_until(
            lambda: client.get("/readyz").status_code == 200,
            timeout=10,
            what="the agent to load its model",
            interval=0.05,
        )
        posted = client.post("/v1/datasets/machines/records?rows=true", json={"records": records})
        assert posted.status_code == 202, posted.text
        rows = posted.json()["rows"]
        assert [r["event_id"] for r in rows] == [r["event_id"] for r in records]
        assert (
            client.post("/v1/datasets/machines/records", json={"records": records[:1]}).json()[
                "rows"
            ]
            is None
        )  # only when asked
        latest = {r["entity_id"]: r["features"] for r in rows}  # in event time order here
        by_entity = client.post(
            f"/v1/models/{MODEL}/predict", json={"entity_ids": ["m-002", "m-000"]}
        )
        explicit = client.post(
            f"/v1/models/{MODEL}/predict",
            json={"instances": [latest["m-002"], latest["m-000"]]},
        )
        assert by_entity.status_code == 200, by_entity.text
        assert by_entity.json()["predictions"] == explicit.json()["predictions"]
        assert set(latest["m-000"]) == set(FACTORY_FEATURES)
        unknown = client.post(
            f"/v1/models/{MODEL}/predict", json={"entity_ids": ["m-000", "m-404"]}
        )
        assert unknown.status_code == 404
        assert unknown.json()["field"] == "entity_ids[1]" and "m-404" in unknown.json()["message"]
        status = client.get("/v1/status").json()["features"]
        assert status == {
            "state": "on",
            "feature_sets": ["machine_health"],
            "entities": 3,
            "readings": 30,
        }


async def test_a_transaction_that_fails_leaves_the_windows_as_the_file_has_them(
    tmp_path: Path, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = stream(90, machines=3)
    queues, intake = open_site(tmp_path / "queue.sqlite3", project)
    first = (await intake.accept(dataset="machines", records=records[:30])).rows
    write = queues.features.write

    def failing(*args: Any, **kwargs: Any) -> None:
        write(*args, **kwargs)  # the rows are written, then the disk fails: rolled back
        raise OSError("disk I/O error")

    monkeypatch.setattr(queues.features, "write", failing)
    with pytest.raises(OSError):
        await intake.accept(dataset="machines", records=records[30:60])
    monkeypatch.undo()
    # nothing of the failed batch was queued
    assert queues.records.depth() == len({r["event_id"] for r in records[:30]})
    rest = (await intake.accept(dataset="machines", records=records[60:])).rows
    kept = records[:30] + records[60:]
    assert comparable(first + rest) == comparable(expected(project, kept))
    queues.close()


def test_a_reloaded_project_is_taken_by_the_agent(tmp_path: Path) -> None:
    """SIGHUP at a site: the agent reads its project again; a new dataset's records are
    validated and turn into its feature set's rows, the old stream goes on."""
    import shutil

    project_dir = tmp_path / "project"
    shutil.copytree(FACTORY, project_dir)
    settings = Settings(site=SITE, cache_dir=str(tmp_path / "cache"), project=str(project_dir))
    pump = {"entity_id": "p-1", "ts": "2026-05-01T00:00:00Z", "flow": 4.5}
    with TestClient(create_app(bootstrap(settings, store=MemoryStore()))) as client:
        refused = client.post("/v1/datasets/pumps/records", json={"records": [pump]})
        assert refused.status_code == 404, refused.text
        spec = project_dir / "millrace.yaml"
        spec.write_text(
            spec.read_text()
            .replace("datasets:\n", "datasets:\n  pumps:\n    fields: {flow: float}\n", 1)
            .replace(
                "feature_sets:\n",
                "feature_sets:\n  pump_flow:\n    dataset: pumps\n    features:\n"
                "      - {name: flow_latest, field: flow, agg: latest}\n",
                1,
            )
        )
        # what SIGHUP runs (a test client's loop is not the main thread's: no signals)
        reloader = client.app.state.runtime.reloader  # type: ignore[attr-defined]
        assert client.portal.call(reloader.reload) is True  # type: ignore[union-attr]
        accepted = client.post("/v1/datasets/pumps/records", json={"records": [pump]})
        assert accepted.status_code == 202, accepted.text
        answer = client.post(
            "/v1/datasets/pumps/records?rows=true",
            json={"records": [pump | {"ts": "2026-05-01T00:01:00Z", "flow": 6.0}]},
        )
        assert [r["features"] for r in answer.json()["rows"]] == [{"flow_latest": 6.0}]
        machines = take(factory_records(machines=1, seed=2), 1)
        assert (
            client.post("/v1/datasets/machines/records", json={"records": machines}).status_code
            == 202
        )
