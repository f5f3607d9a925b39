"""Store and forward: records are on disk before the 202, leave only when the centre
acknowledged them, in order per entity; a full queue follows its policy and every drop
is counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from millrace_common.objectstore import MemoryStore
from millrace_edge_agent.adapters.centre import CentreUnavailable, refusal
from millrace_edge_agent.adapters.queue import Queues
from millrace_edge_agent.adapters.queue.records import NewRecord, QueueFull, RecordQueue
from millrace_edge_agent.app import bootstrap, create_app
from millrace_edge_agent.config import Settings
from millrace_edge_agent.forwarder import Forwarder
from millrace_edge_agent.heartbeat import Heartbeats
from prometheus_client import REGISTRY

from tests.support.fakes import FakeCentre

SITE = "plant-1"


def record(entity: str, n: int) -> dict[str, Any]:
    return {
        "entity_id": entity,
        "ts": f"2026-01-01T00:00:{n:02d}Z",
        "temperature": 70.0 + n,
        "vibration": 0.2,
        "pressure": 3.0,
        "speed": 1500.0,
    }


def new(entity: str, n: int, dataset: str = "machines") -> NewRecord:
    return NewRecord(
        event_id=f"{entity}-{n}",
        dataset=dataset,
        entity_id=entity,
        record={**record(entity, n), "event_id": f"{entity}-{n}"},
    )


def queues(tmp_path: Path, **kwargs: Any) -> Queues:
    options: dict[str, Any] = {"max_rows": 100, "max_age": 3600.0, "policy": "reject-new"}
    return Queues.open(tmp_path / "queue.sqlite3", **{**options, **kwargs})


def queue(tmp_path: Path, **kwargs: Any) -> RecordQueue:
    return queues(tmp_path, **kwargs).records


async def test_forwards_in_order_and_deletes_only_after_the_ack(tmp_path: Path) -> None:
    disk = queue(tmp_path)
    disk.append([new("m-1", 1), new("m-2", 1), new("m-1", 2)])
    disk.append([new("m-1", 3, dataset="other"), new("m-2", 2)])
    centre = FakeCentre()
    forwarder = Forwarder(queue=disk, sink=centre, batch_size=10, rand=lambda: 0.0)
    centre.state = "down"
    assert await forwarder.forward_once() == 0
    assert disk.depth() == 5 and forwarder.status.consecutive_failures == 1
    centre.state = "up"
    assert await forwarder.forward_once() == 3  # one dataset per batch, in queue order
    assert await forwarder.forward_once() == 1
    assert await forwarder.forward_once() == 1
    assert [(d, r["event_id"]) for d, r in centre.by_dataset] == [
        ("machines", "m-1-1"),
        ("machines", "m-2-1"),
        ("machines", "m-1-2"),
        ("other", "m-1-3"),
        ("machines", "m-2-2"),
    ]
    assert disk.depth() == 0 and forwarder.status.consecutive_failures == 0


async def test_the_queue_survives_a_reopen_like_a_crash(tmp_path: Path) -> None:
    first = queue(tmp_path)
    first.append([new("m-1", n) for n in range(5)])
    first.append([new("m-1", 0)])  # a producer's retry of the same event is kept once
    # no close(): the process died
    reopened = queue(tmp_path)
    assert [q.event_id for q in reopened.peek(10)] == [f"m-1-{n}" for n in range(5)]


def test_reject_new_refuses_the_batch_and_counts_it(tmp_path: Path) -> None:
    disk = queue(tmp_path, max_rows=3)
    disk.append([new("m-1", 1), new("m-1", 2)])
    with pytest.raises(QueueFull, match="reject-new"):
        disk.append([new("m-1", 3), new("m-1", 4)])
    assert disk.depth() == 2 and disk.drops() == {"queue_full_rejected": 2}
    disk.append([new("m-1", 5)])
    assert [q.event_id for q in disk.peek(10)] == ["m-1-1", "m-1-2", "m-1-5"]


def test_drop_oldest_keeps_the_newest_and_counts(tmp_path: Path) -> None:
    disk = queue(tmp_path, max_rows=3, policy="drop-oldest")
    disk.append([new("m-1", n) for n in range(3)])
    assert disk.append([new("m-1", 3), new("m-1", 4)]) == {"queue_full_dropped_oldest": 2}
    assert [q.event_id for q in disk.peek(10)] == ["m-1-2", "m-1-3", "m-1-4"]
    disk.append([new("m-2", n) for n in range(5)])
    assert [q.event_id for q in disk.peek(10)] == ["m-2-2", "m-2-3", "m-2-4"]
    assert disk.drops() == {"queue_full_dropped_oldest": 7}


async def test_records_older_than_the_age_bound_are_dropped_and_counted(tmp_path: Path) -> None:
    now = [1000.0]
    disk = queue(tmp_path, max_age=60.0, clock=lambda: now[0])
    disk.append([new("m-1", 1)])
    now[0] += 30
    disk.append([new("m-1", 2)])
    now[0] += 45
    centre = FakeCentre()
    await Forwarder(queue=disk, sink=centre).forward_once()
    assert [r["event_id"] for r in centre.received] == ["m-1-2"]
    assert disk.drops() == {"expired": 1}


async def test_records_the_centre_refuses_are_dropped_counted_and_the_rest_flow(
    tmp_path: Path,
) -> None:
    disk = queue(tmp_path)
    disk.append(
        [
            new("m-1", 1),
            NewRecord(
                event_id="bad",
                dataset="machines",
                entity_id="m-1",
                record={**record("m-1", 2), "temperature": -5.0, "event_id": "bad"},
            ),
            new("m-1", 3),
        ]
    )
    centre = FakeCentre()
    forwarder = Forwarder(queue=disk, sink=centre)
    assert await forwarder.forward_once() == 1
    assert await forwarder.forward_once() == 2
    assert [r["event_id"] for r in centre.received] == ["m-1-1", "m-1-3"]
    assert disk.drops() == {"refused_by_centre": 1}
    assert "temperature below zero" in (forwarder.status.last_error or "")


def test_a_422_names_the_refused_records() -> None:
    body = {
        "errors": [
            {"field": "records[1].temperature", "message": "x"},
            {"field": "records[3]", "message": "y"},
        ]
    }
    named = refusal(422, body, size=5)
    assert named is not None and named.indices == {1, 3}
    unknown_dataset = refusal(404, {"field": "dataset"}, size=3)
    assert unknown_dataset is not None and unknown_dataset.indices == {0, 1, 2}


async def test_heartbeats_wait_on_disk_while_the_registry_is_away(tmp_path: Path) -> None:
    disk = queues(tmp_path)
    reported: list[dict[str, Any]] = []
    up = [False]

    class Registry:
        async def report(self, site: str, heartbeat: dict[str, Any]) -> None:
            if not up[0]:
                raise CentreUnavailable("down")
            reported.append(heartbeat)

    beats = Heartbeats(
        site=SITE,
        queue=disk.heartbeats,
        sink=Registry(),
        state=lambda: {"site": SITE, "queue_depth": disk.records.depth()},
    )
    assert await beats.beat() == 0
    assert await beats.beat() == 0
    up[0] = True
    assert await beats.beat() == 3
    assert len(reported) == 3 and reported[0]["sent_at"] < reported[2]["sent_at"]
    assert disk.heartbeats.peek(10) == []


def test_the_records_route_queues_validates_and_reports_a_full_queue(
    tmp_path: Path, project_dir: Path
) -> None:
    settings = Settings(
        site=SITE, cache_dir=str(tmp_path), project=str(project_dir), queue_max_rows=3
    )
    before = (
        REGISTRY.get_sample_value(
            "millrace_edge_records_dropped_total", {"reason": "queue_full_rejected"}
        )
        or 0
    )
    with TestClient(create_app(bootstrap(settings, store=MemoryStore()))) as client:
        url = "/v1/datasets/machines/records"
        ok = client.post(
            url, json={"records": [record("m-1", 1), {**record("m-1", 2), "event_id": "mine"}]}
        )
        assert ok.status_code == 202, ok.text
        assert ok.json()["accepted"] == 2 and ok.json()["event_ids"][1] == "mine"
        bad = client.post(
            url, json={"records": [record("m-1", 3), {**record("m-1", 4), "temperature": "hot"}]}
        )
        assert bad.status_code == 422 and bad.json()["field"] == "records[1].temperature"
        unknown = client.post("/v1/datasets/nope/records", json={"records": [record("m", 1)]})
        assert unknown.status_code == 404 and unknown.json()["field"] == "dataset"
        full = client.post(url, json={"records": [record("m-1", 5), record("m-1", 6)]})
        assert full.status_code == 507
        assert full.json()["error"] == "queue_full"  # the platform error body: the count is in
        assert "queue is full" in full.json()["message"]  # the message, which says how many
        assert "2 record(s) refused" in full.json()["message"]
        status = client.get("/v1/status").json()
        assert status["queue_depth"] == 2 and status["drops"] == {"queue_full_rejected": 2}
    assert (
        REGISTRY.get_sample_value(
            "millrace_edge_records_dropped_total", {"reason": "queue_full_rejected"}
        )
        == before + 2
    )
