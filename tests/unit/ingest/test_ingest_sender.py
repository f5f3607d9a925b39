"""The shared batch sender against ingest's own app (its producer a fake): batches,
acknowledgements, everything before the first bad record sent, and bad records counted
with their reasons up to --max-refused."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from millrace_common.errors import InvalidInput
from millrace_common.project import load_project
from millrace_ingest.app import create_app
from millrace_ingest.config import Settings
from millrace_ingest.connectors.sender import ConnectorError, IngestClient, Item, send_all
from millrace_ingest.runtime import Runtime

from tests.support.fakes import FakeProducer
from tests.support.paths import FACTORY


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer(source="ingest")


@pytest.fixture
def client(producer: FakeProducer) -> IngestClient:
    settings = Settings(project=str(FACTORY))
    runtime = Runtime(
        settings=settings,
        project=load_project(settings.project),
        producer=producer,  # type: ignore[arg-type]
    )
    runtime.started = True  # the producer in memory is connected: no lifespan runs here
    return IngestClient("http://ingest", http=TestClient(create_app(runtime)))


def items(count: int, *, bad_at: int | None = None) -> list[Item]:
    return [
        Item(
            f"line {i}",
            {
                "entity_id": f"m-{i}",
                "ts": "2026-01-01T00:00:00Z",
                "temperature": "hot" if i == bad_at else 70.0,
                "vibration": 0.1,
                "pressure": 3.0,
                "speed": 1500.0,
                "event_id": f"e-{i}",
            },
            checkpoint=i,
        )
        for i in range(count)
    ]


def test_batches_are_sent_and_acknowledged_in_order(
    client: IngestClient, producer: FakeProducer
) -> None:
    acked: list[list[int]] = []
    done = send_all(
        client=client,
        dataset="machines",
        items=items(5),
        batch=2,
        on_ack=lambda batch: acked.append([i.checkpoint for i in batch]),
    )
    assert done.sent == 5 and done.refused == [] and acked == [[0, 1], [2, 3], [4]]
    assert [v["event_id"] for v in producer.values] == [f"e-{i}" for i in range(5)]


def test_everything_before_a_bad_record_is_sent_and_counted(
    client: IngestClient, producer: FakeProducer
) -> None:
    acked: list[int] = []
    with pytest.raises(ConnectorError) as caught:
        send_all(
            client=client,
            dataset="machines",
            items=items(10, bad_at=6),
            batch=4,
            on_ack=lambda batch: acked.extend(i.checkpoint for i in batch),
        )
    assert caught.value.message == "line 6: temperature: expected float, got str"
    assert caught.value.sent == 6 and acked == list(range(6))
    assert [v["event_id"] for v in producer.values] == [f"e-{i}" for i in range(6)]


def test_a_bad_source_line_sends_what_was_read_before_it(
    client: IngestClient, producer: FakeProducer
) -> None:
    def source() -> Any:
        yield from items(3)
        raise InvalidInput("f.csv line 5: temperature: expected float, got 'hot'")

    with pytest.raises(ConnectorError) as caught:
        send_all(client=client, dataset="machines", items=source(), batch=10)
    assert caught.value.sent == 3 and len(producer.values) == 3
    assert caught.value.message.startswith("f.csv line 5")


def test_unknown_dataset_and_unreachable_ingest(client: IngestClient) -> None:
    with pytest.raises(InvalidInput, match="nope"):
        client.dataset("nope")
    with IngestClient("http://127.0.0.1:9", timeout=2) as down:
        with pytest.raises(InvalidInput, match="cannot reach ingest at http://127.0.0.1:9"):
            down.dataset("machines")


def test_bad_records_are_counted_with_their_reasons_up_to_the_limit(
    client: IngestClient, producer: FakeProducer
) -> None:
    source = items(12, bad_at=3)
    source[7] = Item("line 7", {"line": "{nope"}, checkpoint=7, refusal="not JSON (x)")
    source[9] = Item("line 9", dict(source[9].record, temperature="cold"), checkpoint=9)
    acked: list[int] = []
    done = send_all(
        client=client,
        dataset="machines",
        items=source,
        batch=4,
        max_refused=3,
        on_ack=lambda batch: acked.extend(i.checkpoint for i in batch),
    )
    assert done.sent == 9 and [r.where for r in done.refused] == ["line 3", "line 7", "line 9"]
    assert done.reasons() == "temperature: expected float (2), not JSON (x) (1)"
    assert done.refused[0].record["temperature"] == "hot"  # kept as it came: nothing lost
    assert acked == list(range(12))  # a cursor moves past what was refused, in order
    assert [v["event_id"] for v in producer.values] == [
        f"e-{i}" for i in range(12) if i not in (3, 7, 9)
    ]
    with pytest.raises(ConnectorError) as caught:
        send_all(client=client, dataset="machines", items=source, batch=4, max_refused=2)
    assert caught.value.message.startswith("line 9: temperature: expected float")
    assert "more than --max-refused 2" in caught.value.message
    assert (caught.value.sent, caught.value.refused) == (7, 2)
