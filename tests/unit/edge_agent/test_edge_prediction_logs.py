"""Prediction logs at the edge: buffered in memory, written to disk in batches, bounded
twice (buffer and disk) with every drop counted, forwarded with their request ids and
deleted only once the centre acknowledged them; a prediction is never refused for them."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from millrace_cli.processes import wait_until
from millrace_common.dataplane import PendingLog, prediction_log
from millrace_common.errors import InvalidInput
from millrace_common.objectstore import MemoryStore
from millrace_common.scoring import LoadedModel, load_model
from millrace_edge_agent.adapters.centre import refusal
from millrace_edge_agent.adapters.queue import Queues
from millrace_edge_agent.adapters.queue.file import QueueFile
from millrace_edge_agent.adapters.queue.prediction_logs import PredictionLogQueue
from millrace_edge_agent.app import bootstrap, create_app
from millrace_edge_agent.config import Settings, load_settings
from millrace_edge_agent.forwarder import PredictionLogForwarder
from millrace_edge_agent.prediction_logs import PredictionLogBuffer
from millrace_edge_agent.status import describe, heartbeat_of
from prometheus_client import REGISTRY

from tests.support.fakes import FakeCentre
from tests.support.models import build_model, deploy_to_site, instance

SITE = "plant-pl"
MODEL = "machine-failure"


@functools.cache
def scored() -> LoadedModel:
    artifact = build_model(seed=1)
    return load_model(
        name=MODEL, version=1, data=artifact.data, sha256=artifact.sha256, schema=artifact.schema
    )


def logged(n: int = 0, *, latency_ms: float = 1.0) -> PendingLog:
    """What the data plane hands the sink for the n-th prediction (inputs differ by n)."""
    model = scored()
    matrix = np.full((1, len(model.schema.features)), n, dtype=np.float32)
    return prediction_log(model, "production", matrix, model.run(matrix), latency_ms / 1000)


def inputs_of(pending: PendingLog) -> str:
    return hashlib.sha256(pending.matrix.tobytes()).hexdigest()


def queue(tmp_path: Path, **kwargs: Any) -> Queues:
    options: dict[str, Any] = {"max_rows": 100, "max_age": 3600.0, "policy": "reject-new"}
    return Queues.open(tmp_path / "queue.sqlite3", **{**options, **kwargs})


def on_disk(disk: PredictionLogQueue) -> list[dict[str, Any]]:
    return [orjson.loads(body) for _seq, body in disk.peek(1000)]


def dropped(reason: str) -> float:
    sample = REGISTRY.get_sample_value(
        "millrace_edge_prediction_logs_dropped_total", {"reason": reason}
    )
    return sample or 0.0


class CountingQueue(PredictionLogQueue):
    """The real queue, remembering the size of every write (one commit each)."""

    writes: list[int]

    def append(self, logs: Sequence[tuple[str, bytes]], *, lost_in_buffer: int = 0) -> int:
        self.writes = [*getattr(self, "writes", []), len(logs)]
        return super().append(logs, lost_in_buffer=lost_in_buffer)


async def test_the_buffer_writes_in_batches_and_counts_what_it_had_no_room_for(
    tmp_path: Path,
) -> None:
    disk = CountingQueue(QueueFile(tmp_path / "queue.sqlite3"), max_rows=10)
    buffer = PredictionLogBuffer(queue=disk, site=SITE, max_buffer=5, batch=2)
    before = dropped("buffer_full")
    events = [logged(n) for n in range(8)]
    for event in events:
        buffer.offer(event)  # never blocks, never raises
    assert (buffer.buffered, buffer.lost) == (5, 3)
    assert dropped("buffer_full") == before + 3
    assert await buffer.flush() == 5
    assert disk.writes == [2, 2, 1]  # one commit per batch, not per prediction
    stored = on_disk(disk)
    assert [s["inputs_sha256"] for s in stored] == [inputs_of(e) for e in events[:5]]
    assert len({s["request_id"] for s in stored}) == 5
    assert {s["site"] for s in stored} == {SITE}
    assert disk.drops() == {"buffer_full": 3}  # on disk, survives a restart
    assert buffer.lost == 0 and await buffer.flush() == 0


def test_the_disk_keeps_the_newest_prediction_logs_and_counts_the_rest(tmp_path: Path) -> None:
    both = queue(tmp_path, max_prediction_logs=4, max_rows=1)
    disk = both.prediction_logs
    first = [(f"r-{n}", orjson.dumps({"n": n})) for n in range(3)]
    second = [(f"r-{n}", orjson.dumps({"n": n})) for n in range(3, 6)]
    assert disk.append(first) == 0
    assert disk.append(second) == 2
    assert disk.append(second[-1:]) == 0  # a repeat is kept once
    assert [orjson.loads(b)["n"] for _s, b in disk.peek(10)] == [2, 3, 4, 5]
    assert disk.drops() == {"queue_full_dropped_oldest": 2}
    assert both.records.drops() == {}  # the records' counts are the records' own
    reopened = queue(tmp_path, max_prediction_logs=4).prediction_logs  # no close(): it died
    assert reopened.depth() == 4
    assert reopened.drops() == {"queue_full_dropped_oldest": 2}


async def test_forwarding_deletes_only_what_the_centre_acknowledged_with_the_same_ids(
    tmp_path: Path,
) -> None:
    disk = queue(tmp_path).prediction_logs
    buffer = PredictionLogBuffer(queue=disk, site=SITE)
    events = [logged(n, latency_ms=-1.0 if n == 4 else 1.0) for n in range(5)]
    for event in events:
        buffer.offer(event)
    await buffer.flush()
    centre = FakeCentre()
    forwarder = PredictionLogForwarder(queue=disk, sink=centre, batch_size=3, rand=lambda: 0.0)
    before = dropped("refused_by_centre")

    centre.state = "down"
    assert await forwarder.forward_once() == 0
    centre.state = "ack-lost"  # the centre has the batch, the agent never hears so
    assert await forwarder.forward_once() == 0
    assert disk.depth() == 5 and forwarder.status.consecutive_failures == 2
    centre.state = "up"
    assert await forwarder.forward_once() == 3
    assert centre.attempts[0] == centre.attempts[1]  # the resend carries the same ids
    assert await forwarder.forward_once() == 1  # the refused log leaves, counted
    assert await forwarder.forward_once() == 1
    assert await forwarder.forward_once() == 0

    assert disk.depth() == 0 and forwarder.status.consecutive_failures == 0
    assert disk.drops() == {"refused_by_centre": 1}
    assert dropped("refused_by_centre") == before + 1
    by_id = {v["request_id"]: v for v in centre.received}  # the centre's dedup
    assert len(by_id) == 4
    assert {v["inputs_sha256"] for v in by_id.values()} == {inputs_of(e) for e in events[:4]}
    assert len(centre.received) == 7  # 3 twice (the lost ack), then the fourth
    assert {v["site"] for v in centre.received} == {SITE}


def test_a_422_names_the_refused_prediction_logs() -> None:
    body = {
        "errors": [
            {"field": "predictions[2].latency_ms", "message": "x"},
            {"field": "records[0].temperature", "message": "y"},
        ]
    }
    named = refusal(422, body, size=4, items="predictions")
    assert named is not None and named.indices == {2}
    # naming no log in particular: the forwarder halves the batch to find the bad ones
    unnamed = refusal(422, {"field": "predictions"}, size=2, items="predictions")
    assert unnamed is not None and unnamed.indices == set()


def deployed_store() -> MemoryStore:
    store = MemoryStore()
    deploy_to_site(store, site=SITE, name=MODEL)
    return store


def predict(client: TestClient, value: float) -> None:
    response = client.post(f"/v1/models/{MODEL}/predict", json={"instances": [instance(value)]})
    assert response.status_code == 200, response.text


def test_every_prediction_is_answered_and_logged_on_disk_within_its_bound(
    tmp_path: Path,
) -> None:
    settings = Settings(
        site=SITE, cache_dir=str(tmp_path), poll_interval=0.05, prediction_log_max_rows=4
    )
    centre = FakeCentre()
    centre.state = "down"
    runtime = bootstrap(settings, store=deployed_store(), prediction_sink=centre)
    assert runtime.prediction_forwarder is not None
    runtime.prediction_forwarder.retry_cap = 0.2
    before = dropped("queue_full_dropped_oldest")
    with TestClient(create_app(runtime)) as client:
        wait_until(
            lambda: client.get("/readyz").status_code == 200,
            timeout=10,
            what="the agent to load its model",
            interval=0.05,
        )
        for n in range(10):
            predict(client, n / 10)  # a full log queue never refuses a prediction
        wait_until(
            lambda: (
                client.get("/v1/status").json()["prediction_logs"]["drops"]
                == {"queue_full_dropped_oldest": 6}
            ),
            timeout=10,
            what="the logs to reach the disk, the oldest six dropped",
            interval=0.05,
        )
        state = client.get("/v1/status").json()["prediction_logs"]
        assert (state["queue_depth"], state["sample_rate"]) == (4, 1.0)
        assert state["forward_failures"] > 0 and state["forwarded"] == 0
        assert dropped("queue_full_dropped_oldest") == before + 6
        # the heartbeat tells the centre too, apart from the records it dropped (none)
        beat = heartbeat_of(describe(runtime))
        assert (beat["prediction_log_drops"], beat["drops"]) == (6, 0)
        assert (
            'millrace_edge_prediction_logs_dropped_total{reason="queue_full_dropped_oldest"}'
            in client.get("/metrics").text
        )
        centre.state = "up"
        wait_until(
            lambda: client.get("/v1/status").json()["prediction_logs"]["forwarded"] == 4,
            timeout=10,
            what="the four kept logs to reach the centre",
            interval=0.05,
        )
        predict(client, 2.0)
    # a clean stop writes the buffer out before the queue closes
    disk = PredictionLogQueue(QueueFile(settings.queue_path))
    assert len(centre.received) + disk.depth() == 5
    kept = centre.received + on_disk(disk)
    assert {v["site"] for v in kept} == {SITE}
    assert len({v["request_id"] for v in kept}) == 5
    assert {(v["model"], v["version"], v["alias"]) for v in kept} == {(MODEL, 1, "production")}


def test_the_sample_rate_logs_a_share_of_the_predictions(tmp_path: Path) -> None:
    settings = Settings(site=SITE, cache_dir=str(tmp_path), prediction_sample_rate=0.5)
    runtime = bootstrap(settings, store=deployed_store())
    with TestClient(create_app(runtime)) as client:
        wait_until(
            lambda: client.get("/readyz").status_code == 200,
            timeout=10,
            what="the agent to load its model",
            interval=0.05,
        )
        for n in range(200):
            predict(client, n / 200)
    disk = PredictionLogQueue(QueueFile(settings.queue_path))
    assert 50 < disk.depth() < 150  # binomial(200, 0.5): 1e-12 to miss


def test_a_sample_rate_of_zero_logs_nothing_and_one_out_of_range_is_named(
    tmp_path: Path,
) -> None:
    settings = Settings(site=SITE, cache_dir=str(tmp_path), prediction_sample_rate=0)
    runtime = bootstrap(settings, store=MemoryStore())
    assert runtime.prediction_logs is None
    assert describe(runtime).prediction_logs.model_dump() == {"state": "off"}
    with pytest.raises(InvalidInput, match="prediction_sample_rate"):
        load_settings(overrides={"site": SITE, "prediction_sample_rate": 1.5})
