"""ingest through a broker outage, as processes: posts are a fast 503 with Retry-After
while the broker is away, /readyz is red naming it and green again within 5 s of its
return, and the refused posts, retried, leave one event id on ``raw`` per record."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from millrace_cli.processes import ProcessSpec, Supervisor, free_port, script, tansu_spec
from millrace_common.contracts import PREDICTIONS, RAW
from millrace_common.messaging import ensure_topics

from tests.support.kafka import read_topic, value_of
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]
log = structlog.get_logger(__name__)
URL = "/v1/datasets/machines/records"


@pytest.fixture
def broker_spec(supervisor: Supervisor) -> Iterator[ProcessSpec]:
    """A broker of this test's own, to stop and start again on the same port."""
    port = free_port()
    spec = tansu_spec(port)
    spec.name = f"tansu-{port}"
    supervisor.start(spec)
    yield spec
    supervisor.stop(spec.name)


@pytest.fixture
def ingest(supervisor: Supervisor, broker_spec: ProcessSpec, project_dir: Path) -> Iterator[str]:
    port = free_port()
    supervisor.start(
        ProcessSpec(
            name=f"ingest-outage-{port}",
            argv=[script("millrace-ingest")],
            env={
                "MILLRACE_BROKER": _address(broker_spec),
                "MILLRACE_PROJECT": str(project_dir),
                "MILLRACE_INGEST_PORT": str(port),
            },
            ready_url=f"http://127.0.0.1:{port}/readyz",
        )
    )
    yield f"http://127.0.0.1:{port}"
    supervisor.stop(f"ingest-outage-{port}")


def _address(spec: ProcessSpec) -> str:
    return f"127.0.0.1:{spec.ready_port}"


def batch(n: int, size: int = 50) -> list[dict[str, Any]]:
    return [
        {
            "entity_id": f"m-{i % 7}",
            "ts": f"2026-01-01T{n % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "temperature": 70.0 + n + i / 1000,
            "vibration": 0.2,
            "pressure": 3.1,
            "speed": 1500.0,
        }
        for i in range(size)
    ]


def ready(client: httpx.Client) -> httpx.Response:
    return client.get("/readyz")


async def test_a_broker_outage_is_a_fast_503_and_retries_make_one_record_each(
    ingest: str, broker_spec: ProcessSpec, supervisor: Supervisor
) -> None:
    client = httpx.Client(base_url=ingest, timeout=30)
    assert client.post(URL, json={"records": batch(0)}).status_code == 202

    supervisor.stop(broker_spec.name)
    refused: list[tuple[dict[str, str], list[dict[str, Any]]]] = []
    waits: list[float] = []
    for n in range(1, 7):  # half with an Idempotency-Key, half with ids from their content
        headers = {"Idempotency-Key": f"outage-{n}"} if n % 2 else {}
        records = batch(n)
        began = time.monotonic()
        answer = client.post(URL, json={"records": records}, headers=headers)
        waits.append(time.monotonic() - began)
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["retry-after"]) > 0
        assert answer.json()["error"] == "unavailable"
        refused.append((headers, records))
    log.info("outage_refusals", seconds=[round(w, 3) for w in waits])
    assert max(waits) < 10, waits  # the first waits out the send timeout, the rest are at once
    assert max(waits[1:]) < 2, waits
    wait_until(lambda: ready(client).status_code == 503, timeout=30, what="a red /readyz")
    assert _address(broker_spec) in ready(client).json()["detail"]

    supervisor.start(broker_spec)
    back = time.monotonic()
    # this broker keeps its log in memory: it comes back empty (a durable one keeps its topics)
    await ensure_topics(_address(broker_spec), [RAW, PREDICTIONS])
    wait_until(lambda: ready(client).status_code == 200, timeout=30, what="a green /readyz")
    to_green = time.monotonic() - back
    log.info("outage_ready_again", seconds=round(to_green, 3))
    assert to_green < 5

    posted: list[str] = []
    attempts = 0
    for headers, records in refused:
        answer = client.post(URL, json={"records": records}, headers=headers)
        while answer.status_code == 503 and time.monotonic() - back < 60:  # as a client would
            attempts += 1
            time.sleep(min(float(answer.headers["retry-after"]), 1.0))
            answer = client.post(URL, json={"records": records}, headers=headers)
        assert answer.status_code == 202, answer.text
        posted.extend(answer.json()["event_ids"])
    log.info("outage_retried", refused_again=attempts, seconds=round(time.monotonic() - back, 3))
    assert len(set(posted)) == sum(len(records) for _, records in refused)
    found = await read_topic(
        _address(broker_spec),
        RAW,
        until=lambda kept: len({value_of(r)["event_id"] for r in kept}) >= len(set(posted)),
        what="every retried record",
    )
    per_event = Counter(value_of(r)["event_id"] for r in found)
    log.info("outage_rows", records=len(posted), rows=len(found), distinct=len(per_event))
    # one event per record: a post answered 503 may still have been written (an ack the
    # broker sent and lost), and its retry then writes the same event ids again, which
    # the features service keeps once
    assert set(per_event) == set(posted)


def test_ingest_starts_before_the_broker_and_connects_when_it_comes(
    supervisor: Supervisor, project_dir: Path
) -> None:
    """No broker at start: ingest still starts (it used to exit after 60 s), red and
    refusing posts with a 503 naming the broker, then connects by itself."""
    broker_port, port = free_port(), free_port()
    name = f"ingest-early-{port}"
    supervisor.start(
        ProcessSpec(
            name=name,
            argv=[script("millrace-ingest")],
            env={
                "MILLRACE_BROKER": f"127.0.0.1:{broker_port}",
                "MILLRACE_PROJECT": str(project_dir),
                "MILLRACE_INGEST_PORT": str(port),
            },
            ready_url=f"http://127.0.0.1:{port}/healthz",
        )
    )
    url = f"http://127.0.0.1:{port}"
    try:
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and str(broker_port) in ready.text
        refused = httpx.post(f"{url}{URL}", json={"records": batch(0, size=1)}, timeout=10)
        assert refused.status_code == 503 and "Retry-After" in refused.headers
        time.sleep(65)  # past the minute after which it used to give up and exit
        assert name not in supervisor.failed(), "ingest exited while the broker was away"
        spec = tansu_spec(broker_port)
        spec.name = f"tansu-late-{broker_port}"
        supervisor.start(spec)
        wait_until(
            lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200,
            timeout=120,
            what="ingest to connect to the broker that came late",
        )
        accepted = httpx.post(f"{url}{URL}", json={"records": batch(1, size=1)}, timeout=30)
        assert accepted.status_code == 202, accepted.text
    finally:
        supervisor.stop(name)
        supervisor.stop(f"tansu-late-{broker_port}")
