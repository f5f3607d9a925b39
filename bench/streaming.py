"""The stream: features throughput against the broker's floor, freshness idle and at half
capacity, two workers against one, and ingest's REST intake against a plain producer.

Every figure is measured side by side in this run, on real components: Tansu in memory,
Postgres, the features worker as its own process (``millrace-features``) on the factory
project, records made by the factory simulator for 1,000 machines.

- **pipeline ÷ broker floor**: 100,000 records are produced to ``raw`` first; the worker's
  rate is the offline rows it writes per second from its first batch to its last, by the
  rows' own ``created_at`` (the batch's commit; polling the count would add its interval
  to a run of a few seconds); the floor is a plain aiokafka consumer reading (and
  JSON-decoding) the same number of records.
- **freshness**: one record at a time (an entity of its own), the time from its produce
  call returning to its online row (polled every 2 ms), idle and while a background
  producer sends the fleet's records at half the rate measured above.
- **two workers ÷ one**: a second worker in the same group, the same backlog again.
- **ingest ÷ produce**: 500-record posts to ``POST /v1/datasets/machines/records`` (four
  in flight) against aiokafka producing the same records.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from millrace_cli.processes import (
    ProcessSpec,
    Supervisor,
    free_port,
    script,
    tansu_spec,
    wait_until,
)
from millrace_cli.simulator import factory_records, take
from millrace_common.identity import mint_key

TITLE = "Streaming: features, freshness, ingest"
ROOT = Path(__file__).resolve().parents[1]
FACTORY = ROOT / "examples" / "factory"
PG = os.environ.get("MILLRACE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
RECORDS = 100_000
MACHINES = 1_000
PROBES = 60


def run() -> list[dict[str, Any]]:
    with _platform() as platform:
        return platform.measure()


class _Platform:
    def __init__(self, supervisor: Supervisor, tmp: Path, broker: str, database: str) -> None:
        self.supervisor = supervisor
        self.tmp = tmp
        self.broker = broker
        self.database = database
        self.workers = 0
        self.fleet = factory_records(machines=MACHINES)

    def measure(self) -> list[dict[str, Any]]:
        asyncio.run(_produce(self.broker, take(self.fleet, MACHINES)))  # topics, warm-up
        self.start_worker()
        wait_until(lambda: self.rows() >= MACHINES, timeout=180, what="the warm-up rows")
        one = self.throughput()
        floor = asyncio.run(_floor(self.broker, RECORDS))
        idle = asyncio.run(self.freshness(background=0.0))
        busy = asyncio.run(self.freshness(background=one / 2))
        self.start_worker()
        two = self.throughput()
        ingest, produce = self.ingest_against_produce()
        return [
            _row("features rows/s, one worker", one, "—"),
            _row("plain aiokafka consumer, records/s", floor, "—"),
            _row("pipeline ÷ broker floor", one / floor, "≥ 0.10"),
            _row("freshness idle, p50 ms", idle[0], "< 100"),
            _row("freshness idle, p99 ms", idle[1], "—"),
            _row("freshness at half capacity, p50 ms", busy[0], "—"),
            _row("freshness at half capacity, p99 ms", busy[1], "< 250"),
            _row("two workers ÷ one (2 cores, shared with Postgres and Tansu)", two / one, "—"),
            _row("ingest REST, records/s (500-record posts)", ingest, "—"),
            _row("ingest ÷ plain producer", ingest / produce, "—"),
        ]

    def start_worker(self) -> None:
        self.workers += 1
        port = free_port()
        env = {
            "MILLRACE_BROKER": self.broker,
            "MILLRACE_DATABASE_URL": self.database,
            "MILLRACE_OBJECT_STORE": f"file://{self.tmp}/objects",
            "MILLRACE_PROJECT": str(FACTORY),
            "MILLRACE_FEATURES_PORT": str(port),
            "MILLRACE_FEATURES_DATA_DIR": str(self.tmp / f"state-{self.workers}"),
        }
        spec = ProcessSpec(
            f"features-{self.workers}",
            [script("millrace-features")],
            env,
            ready_url=f"http://127.0.0.1:{port}/readyz",
        )
        self.supervisor.start(spec, timeout=180)

    def rows(self) -> int:
        with psycopg.connect(self.database.replace("+psycopg", "")) as conn:
            found = conn.execute("SELECT count(*) FROM features.offline_rows").fetchone()
        return int(found[0]) if found else 0

    def throughput(self) -> float:
        """Rows/s while the workers drain a backlog of RECORDS records: the rows written
        after the first batch, over the time from the first batch's commit to the last's."""
        start = self.rows()
        began = datetime.now(UTC)
        asyncio.run(_produce(self.broker, take(self.fleet, RECORDS)))
        wait_until(lambda: self.rows() >= start + RECORDS, timeout=600, what="every row")
        with psycopg.connect(self.database.replace("+psycopg", "")) as conn:
            first, last = conn.execute(
                "SELECT min(created_at), max(created_at) FROM features.offline_rows"
                " WHERE created_at >= %s",
                (began,),
            ).fetchone()  # type: ignore[misc]
            after = conn.execute(
                "SELECT count(*) FROM features.offline_rows WHERE created_at > %s", (first,)
            ).fetchone()
        return int(after[0]) / (last - first).total_seconds()  # type: ignore[index]

    async def freshness(self, *, background: float) -> tuple[float, float]:
        """p50 and p99 (ms) from a record's produce to its online row."""
        producer = AIOKafkaProducer(bootstrap_servers=self.broker, linger_ms=0)
        await producer.start()
        stop = asyncio.Event()
        noise = asyncio.create_task(self._background(producer, background, stop))
        latencies = []
        try:
            async with await psycopg.AsyncConnection.connect(
                self.database.replace("+psycopg", ""), autocommit=True
            ) as conn:
                for i, record in enumerate(take(self.fleet, PROBES)):
                    probe = {**record, "entity_id": f"probe-{background:.0f}-{i}"}
                    latencies.append(await _one_probe(producer, conn, probe))
        finally:
            stop.set()
            await noise
            await producer.stop()
        return float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))

    async def _background(
        self, producer: AIOKafkaProducer, rate: float, stop: asyncio.Event
    ) -> None:
        if rate <= 0:
            return
        burst = max(1, int(rate / 50))  # 50 bursts a second
        while not stop.is_set():
            began = time.perf_counter()
            for record in take(self.fleet, burst):
                await producer.send("raw", _value(record), key=record["entity_id"].encode())
            await asyncio.sleep(max(0.0, 0.02 - (time.perf_counter() - began)))

    def ingest_against_produce(self) -> tuple[float, float]:
        port = free_port()
        # as a producer posts to it: with a key, authentication on
        token, key = mint_key("bench-producer", ["producer"])
        keys = self.tmp / "ingest-keys"
        keys.write_text(key.line() + "\n")
        env = {
            "MILLRACE_BROKER": self.broker,
            "MILLRACE_PROJECT": str(FACTORY),
            "MILLRACE_INGEST_PORT": str(port),
            "MILLRACE_AUTH": "required",
            "MILLRACE_AUTH_KEYS_FILE": str(keys),
            "MILLRACE_DATABASE_URL": "",
        }
        spec = ProcessSpec(
            "ingest", [script("millrace-ingest")], env, ready_url=f"http://127.0.0.1:{port}/readyz"
        )
        self.supervisor.start(spec, timeout=120)
        records = take(self.fleet, RECORDS)
        ingest = asyncio.run(_post_all(f"http://127.0.0.1:{port}", records, token=token))
        started = time.perf_counter()
        asyncio.run(_produce(self.broker, records))
        return ingest, len(records) / (time.perf_counter() - started)


async def _one_probe(
    producer: AIOKafkaProducer, conn: psycopg.AsyncConnection[Any], record: dict[str, Any]
) -> float:
    await (await producer.send("raw", _value(record), key=record["entity_id"].encode()))
    sent = time.perf_counter()
    query = "SELECT 1 FROM features.online_rows WHERE entity_id = %s"
    while await (await conn.execute(query, (record["entity_id"],))).fetchone() is None:
        if time.perf_counter() - sent > 30:
            raise TimeoutError(f"no online row for {record['entity_id']} after 30 s")
        await asyncio.sleep(0.002)
    latency = (time.perf_counter() - sent) * 1000
    await asyncio.sleep(0.05)
    return latency


def _value(record: dict[str, Any]) -> bytes:
    return orjson.dumps({"dataset": "machines", **record})


async def _produce(broker: str, records: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=broker, linger_ms=5, max_batch_size=256 * 1024, enable_idempotence=False
    )
    await producer.start()
    try:
        sent = [await producer.send("raw", _value(r), key=r["entity_id"].encode()) for r in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _floor(broker: str, count: int) -> float:
    """A plain consumer (new group) reading ``count`` records of raw, JSON-decoded."""
    consumer = AIOKafkaConsumer(
        "raw",
        bootstrap_servers=broker,
        group_id=f"floor-{secrets.token_hex(3)}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        read, began = 0, time.perf_counter()
        while read < count:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    orjson.loads(record.value)
                read += len(records)
        return read / (time.perf_counter() - began)
    finally:
        await consumer.stop()


async def _post_all(url: str, records: list[dict[str, Any]], *, token: str) -> float:
    batches = [records[i : i + 500] for i in range(0, len(records), 500)]
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def post(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            answer = await client.post("/v1/datasets/machines/records", json={"records": batch})
            answer.raise_for_status()

    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:
        await asyncio.gather(*(post(client) for _ in range(4)))
    return len(records) / (time.perf_counter() - started)


def _row(figure: str, value: float, target: str) -> dict[str, Any]:
    return {"figure": figure, "value": value, "target": target}


@contextmanager
def _platform() -> Iterator[_Platform]:
    tmp = Path(tempfile.mkdtemp(prefix="millrace-bench-stream-"))
    supervisor = Supervisor(tmp / "logs")
    name = f"millrace_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        port = free_port()
        supervisor.start(tansu_spec(port))
        database = PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        yield _Platform(supervisor, tmp, f"127.0.0.1:{port}", f"{database}/{name}")
    finally:
        supervisor.stop_all()
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
