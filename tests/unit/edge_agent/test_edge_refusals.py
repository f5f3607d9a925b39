"""The queue never blocks: what the centre refuses for good leaves it as a dead letter
with the centre's reason, counted and shown, and what follows it is sent; what the
centre cannot take now (a 5xx, a timeout, a dead link) stays queued. Intake refuses
what is too large before it is queued, over REST and MQTT."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from millrace_common.objectstore import MemoryStore
from millrace_edge_agent.adapters.centre import CentreUnavailable, Refused, refusal
from millrace_edge_agent.adapters.queue import Queues
from millrace_edge_agent.adapters.queue.records import NewRecord
from millrace_edge_agent.app import bootstrap, create_app
from millrace_edge_agent.config import Settings
from millrace_edge_agent.forwarder import Forwarder
from millrace_edge_agent.mqtt_intake import Incoming
from millrace_edge_agent.status import describe, heartbeat_of
from prometheus_client import REGISTRY

SITE = "plant-9"
TOPIC = f"millrace/{SITE}/machines/records"


def reading(n: int, entity: str = "m-1", **extra: Any) -> dict[str, Any]:
    return {
        "entity_id": entity,
        "ts": f"2026-01-01T00:00:{n:02d}Z",
        "temperature": 70.0 + n,
        "vibration": 0.2,
        "pressure": 3.0,
        "speed": 1500.0,
        "event_id": f"{entity}-{n}",
        **extra,
    }


def queues(tmp_path: Path) -> Queues:
    return Queues.open(
        tmp_path / "queue.sqlite3", max_rows=1000, max_age=3600.0, policy="reject-new"
    )


def enqueue(disk: Queues, records: list[dict[str, Any]]) -> None:
    disk.records.append(
        [
            NewRecord(
                event_id=r["event_id"], dataset="machines", entity_id=r["entity_id"], record=r
            )
            for r in records
        ]
    )


class BoundedCentre:
    """Ingest's limits as the agent meets them: a body over ``max_body`` bytes is a 413
    naming nothing (its ``BodyLimit``), a record over ``max_record`` a 413 naming its
    largest field; ``failing`` answers a 503 to everything."""

    def __init__(self, *, max_body: int = 10_000, max_record: int = 10_000) -> None:
        self.max_body = max_body
        self.max_record = max_record
        self.failing = False
        self.received: list[dict[str, Any]] = []
        self.requests: list[int] = []  # the size of each batch sent

    async def send(self, dataset: str, records: Sequence[dict[str, Any]]) -> None:
        self.requests.append(len(records))
        if self.failing:
            raise CentreUnavailable("ingest answered 503: the broker is away")
        body = orjson.dumps({"records": list(records)})
        answer: dict[str, Any] | None = None
        if len(body) > self.max_body:
            answer = {"error": "too_large", "message": f"the body is {len(body)} bytes"}
        for i, record in enumerate(records):
            if answer is None and len(orjson.dumps(record)) > self.max_record:
                answer = {"error": "too_large", "message": "too big", "field": f"records[{i}].blob"}
        if answer is not None:
            refused = refusal(413, answer, size=len(records))
            assert refused is not None
            raise refused
        self.received.extend(records)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def drain(forwarder: Forwarder) -> None:
    for _ in range(100):
        if not await forwarder.forward_once():
            return
    raise AssertionError("the forwarder never ran out of work")


async def test_a_record_the_centre_refuses_without_naming_it_is_isolated_by_halving(
    tmp_path: Path,
) -> None:
    disk = queues(tmp_path)
    records = [reading(n) for n in range(8)]
    records[5]["blob"] = "x" * 20_000  # over the body limit alone, named by no field
    enqueue(disk, records)
    centre = BoundedCentre(max_record=50_000)
    forwarder = Forwarder(queue=disk.records, sink=centre, batch_size=8)
    before = counter("millrace_edge_dead_letters_total", source="centre")

    await drain(forwarder)

    assert [r["event_id"] for r in centre.received] == [
        f"m-1-{n}" for n in range(8) if n != 5
    ]  # the others arrive, in order
    assert disk.records.depth() == 0
    [letter] = disk.dead_letters.newest(10)
    assert (letter.source, letter.topic) == ("centre", "machines")
    assert "413" in letter.reason and "too_large" in letter.reason
    assert letter.payload.startswith(b'{"entity_id":"m-1"')
    assert disk.records.drops() == {"refused_by_centre": 1}
    assert counter("millrace_edge_dead_letters_total", source="centre") == before + 1
    assert len(centre.requests) == 7  # log2(8) halvings and the batches between, not 8 + 1


async def test_a_record_the_centre_names_leaves_at_once_and_the_rest_follow(
    tmp_path: Path,
) -> None:
    disk = queues(tmp_path)
    records = [reading(n) for n in range(5)]
    records[2]["blob"] = "x" * 2_000
    enqueue(disk, records)
    centre = BoundedCentre(max_record=1_000)
    forwarder = Forwarder(queue=disk.records, sink=centre, batch_size=5)

    assert await forwarder.forward_once() == 1  # the named record, dead-lettered
    assert await forwarder.forward_once() == 4  # the rest, in the very next round
    assert [r["event_id"] for r in centre.received] == ["m-1-0", "m-1-1", "m-1-3", "m-1-4"]
    [letter] = disk.dead_letters.newest(10)
    assert "records[2].blob" in letter.reason
    assert "centre refused 1 record(s)" in (forwarder.status.last_error or "")


async def test_what_the_centre_cannot_take_now_stays_queued(tmp_path: Path) -> None:
    disk = queues(tmp_path)
    enqueue(disk, [reading(n) for n in range(3)])
    centre = BoundedCentre()
    centre.failing = True
    forwarder = Forwarder(queue=disk.records, sink=centre, rand=lambda: 0.0)
    for _ in range(3):
        assert await forwarder.forward_once() == 0
    assert disk.records.depth() == 3 and disk.records.drops() == {}
    assert forwarder.status.consecutive_failures == 3
    centre.failing = False
    assert await forwarder.forward_once() == 3


async def test_a_batch_halved_by_the_body_limit_stays_halved_while_the_backlog_lasts(
    tmp_path: Path,
) -> None:
    disk = queues(tmp_path)
    enqueue(disk, [reading(n, blob="x" * 900) for n in range(16)])  # ~1 KB each
    centre = BoundedCentre(max_body=5_000)  # four or so a request
    forwarder = Forwarder(queue=disk.records, sink=centre, batch_size=16)
    await drain(forwarder)
    assert len(centre.received) == 16 and disk.dead_letters.newest(10) == []
    assert centre.requests == [16, 8, 4, 4, 4, 4]  # halved, then the size that passed
    assert forwarder.limit is None  # the backlog is out: full batches again


@pytest.mark.parametrize(
    ("status", "body", "indices"),
    [
        (422, {"errors": [{"field": "records[1].temperature", "message": "x"}]}, {1}),
        (413, {"error": "too_large", "field": "records[2].blob", "message": "big"}, {2}),
        (413, {"error": "too_large", "message": "the body is 20000000 bytes"}, set()),
        (400, {"error": "invalid_json", "message": "unparseable"}, set()),
        (404, {"error": "not_found", "message": "unknown dataset", "field": "dataset"}, {0, 1, 2}),
    ],
)
def test_answers_about_the_records_are_refusals(
    status: int, body: dict[str, Any], indices: set[int]
) -> None:
    refused = refusal(status, body, size=3)
    assert isinstance(refused, Refused) and refused.indices == indices


@pytest.mark.parametrize("status", [401, 403, 404, 405, 408, 429, 500, 502, 503, 504])
def test_answers_about_the_link_or_the_agent_are_retried(status: int) -> None:
    """A 401, 403, or a 404 naming no dataset says the agent's credentials or address
    are wrong, not its records: dead-lettering the queue over them would empty a site."""
    assert refusal(status, {"error": "x", "message": "no route /v1/x"}, size=3) is None


def test_intake_refuses_a_body_or_a_record_too_large_naming_the_field(tmp_path: Path) -> None:
    settings = Settings(
        site=SITE,
        cache_dir=str(tmp_path),
        project=str(tmp_path / "no-project"),  # any fields: only the size bounds a record
        max_body_bytes=50_000,
        max_record_bytes=2_000,
        broker="",
    )
    runtime = bootstrap(settings, store=MemoryStore())
    with TestClient(create_app(runtime)) as client:
        url = "/v1/datasets/machines/records"
        big = client.post(url, json={"records": [reading(1, note="x" * 60_000)]})
        assert big.status_code == 413 and big.json()["error"] == "too_large"
        records = [reading(1), reading(2, note="x" * 3_000)]
        one = client.post(url, json={"records": records})
        assert one.status_code == 413
        assert one.json()["field"] == "records[1].note"
        assert runtime.queues.records.depth() == 0  # nothing of the request is queued
        assert client.post(url, json={"records": [reading(3)]}).status_code == 202


async def test_an_mqtt_message_too_large_is_a_dead_letter_with_its_reason(
    tmp_path: Path,
) -> None:
    runtime = bootstrap(
        Settings(
            site=SITE,
            cache_dir=str(tmp_path),
            project=str(tmp_path / "no-project"),
            mqtt_url="mqtt://127.0.0.1:1883",
            max_body_bytes=100_000,
            max_record_bytes=2_000,
            broker="",
        ),
        store=MemoryStore(),
    )
    intake, disk = runtime.mqtt_intake, runtime.queues
    assert intake is not None
    huge = orjson.dumps(reading(1, note="x" * 200_000))
    wide = orjson.dumps([reading(2), reading(3, note="x" * 5_000)])
    await intake.take([Incoming(TOPIC, huge), Incoming(TOPIC, wide), Incoming(TOPIC, b"{}")])
    letters = {letter.reason: letter for letter in disk.dead_letters.newest(10)}
    too_big = next(r for r in letters if "limit is 100000" in r)
    assert f"the message is {len(huge)} bytes" in too_big
    assert "kept: the first 65536" in too_big and len(letters[too_big].payload) == 65536
    assert any("largest field is 'note'" in r for r in letters)
    assert disk.records.depth() == 0
    status = describe(runtime)
    assert status.dead_letters == 3 and status.mqtt.model_dump()["messages_invalid"] == 3


async def test_refusals_are_shown_in_the_status_and_the_heartbeat(
    tmp_path: Path, project_dir: Path
) -> None:
    centre = BoundedCentre(max_record=1_000)
    runtime = bootstrap(
        Settings(site=SITE, cache_dir=str(tmp_path), project=str(project_dir), broker=""),
        store=MemoryStore(),
        sink=centre,
    )
    assert runtime.forwarder is not None
    enqueue(runtime.queues, [reading(1), reading(2, blob="x" * 2_000), reading(3)])
    await drain(runtime.forwarder)
    status = describe(runtime)
    assert status.drops == {"refused_by_centre": 1} and status.dead_letters == 1
    assert status.queue_depth == 0 and status.forwarded == 2
    beat = heartbeat_of(status)
    assert (beat["drops"], beat["refused_by_centre"], beat["dead_letters"]) == (1, 1, 1)
    with TestClient(create_app(runtime)) as client:
        [letter] = client.get("/v1/dead-letters").json()["dead_letters"]
        assert letter["source"] == "centre" and "records[1].blob" in letter["reason"]
        assert orjson.loads(letter["payload"])["event_id"] == "m-1-2"
