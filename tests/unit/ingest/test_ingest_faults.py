"""ingest as the client sees it when things go wrong: deterministic event ids (a retried
post makes no new events), a broker away is a fast 503 with Retry-After, a body or record
too large is a 413 before anything is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, NodeNotReadyError
from millrace_common.messaging import Envelope, Producer
from millrace_ingest.app import bootstrap, create_app
from millrace_ingest.config import Settings

from tests.support.paths import FACTORY
from tests.support.records import RECORD

URL = "/v1/datasets/machines/records"


class FakeProducer(Producer):
    """Takes what it is sent, or fails as the test says; the broker answers unless told."""

    def __init__(self) -> None:
        super().__init__("fake:9092", source="ingest")
        self.sent: list[tuple[str, list[Any]]] = []
        self.failure: BaseException | None = None
        self.hang = False
        self.answers = True

    async def send_many(
        self, topic: str, items: Iterable[tuple[str | None, bytes, Envelope]]
    ) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        if self.failure is not None:
            raise self.failure
        self.sent.append((topic, list(items)))

    async def reachable(self, *, timeout: float = 2.0) -> bool:
        return self.answers


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
async def client(producer: FakeProducer) -> Any:
    settings = Settings(
        project=str(FACTORY), send_timeout=0.2, max_body_bytes=20_000, max_record_bytes=2_000
    )
    runtime = bootstrap(settings, producer=producer)
    runtime.started = True  # no lifespan under ASGITransport: the fake needs no start
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
        yield http


async def test_a_retried_post_has_the_same_event_ids(client: httpx.AsyncClient) -> None:
    batch = {"records": [RECORD, {**RECORD, "entity_id": "m-2"}]}
    first = (await client.post(URL, json=batch)).json()["event_ids"]
    again = (await client.post(URL, json=batch)).json()["event_ids"]
    assert first == again and len(set(first)) == 2
    other = (await client.post(URL, json={"records": [{**RECORD, "temperature": 71.0}]})).json()
    assert other["event_ids"][0] not in first


async def test_idempotency_key_names_the_batch_and_a_given_event_id_is_kept(
    client: httpx.AsyncClient,
) -> None:
    batch = {"records": [RECORD, RECORD, {**RECORD, "event_id": "mine-1"}]}
    keyed = await client.post(URL, json=batch, headers={"Idempotency-Key": "k-1"})
    ids = keyed.json()["event_ids"]
    assert len(set(ids)) == 3 and ids[2] == "mine-1"  # two equal records, two events
    retried = await client.post(URL, json=batch, headers={"Idempotency-Key": "k-1"})
    assert retried.json()["event_ids"] == ids
    other_key = await client.post(URL, json=batch, headers={"Idempotency-Key": "k-2"})
    assert set(other_key.json()["event_ids"][:2]).isdisjoint(ids)


@pytest.mark.parametrize(
    "failure", [NodeNotReadyError("node 0"), KafkaTimeoutError(), OSError("refused")]
)
async def test_a_broker_failure_is_a_503_with_retry_after(
    client: httpx.AsyncClient, producer: FakeProducer, failure: BaseException
) -> None:
    producer.failure = failure
    response = await client.post(URL, json={"records": [RECORD]})
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "unavailable" and "retry" in response.json()["message"]


async def test_a_broker_that_does_not_answer_is_a_503_within_the_send_timeout(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    producer.hang = True
    async with asyncio.timeout(10):
        response = await client.post(URL, json={"records": [RECORD]})
    assert response.status_code == 503 and "retry-after" in response.headers


async def test_readiness_names_the_broker_while_it_is_away_and_posts_are_refused_at_once(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    assert (await client.get("/readyz")).status_code == 200
    producer.failure, producer.answers = NodeNotReadyError("node 0"), False
    assert (await client.post(URL, json={"records": [RECORD]})).status_code == 503
    producer.failure = None
    refused = await client.post(URL, json={"records": [RECORD]})
    assert refused.status_code == 503 and producer.sent == []  # not even tried
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and "fake:9092" in ready.json()["detail"]
    producer.answers = True
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.post(URL, json={"records": [RECORD]})).status_code == 202


async def test_a_record_over_the_message_size_is_a_413_naming_its_field(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    big = {**RECORD, "entity_id": "m-" + "x" * 3000}
    response = await client.post(URL, json={"records": [RECORD, big]})
    assert response.status_code == 413, response.text
    assert response.json()["field"] == "records[1].entity_id"
    assert producer.sent == []  # all or nothing


async def test_the_brokers_own_size_refusal_is_a_413(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    producer.failure = MessageSizeTooLargeError()
    response = await client.post(URL, json={"records": [RECORD]})
    assert response.status_code == 413 and response.json()["error"] == "too_large"


async def test_a_body_over_the_limit_is_a_413_before_it_is_read(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    response = await client.post(URL, json={"records": [RECORD] * 200})
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "too_large" and "20000" in response.json()["message"]

    async def chunked() -> Any:
        for _ in range(30):
            yield b" " * 1000

    streamed = await client.post(
        URL, content=chunked(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413 and streamed.json()["error"] == "too_large"
    assert producer.sent == []
