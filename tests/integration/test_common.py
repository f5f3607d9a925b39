"""The shared adapters against real components: Tansu, Postgres, S3 (moto)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from millrace_common.contracts import DLQ, DeadLetter
from millrace_common.db import make_engine, session_factory
from millrace_common.errors import IntegrityError, NotFound, Unavailable
from millrace_common.messaging import ConsumerLoop, Envelope, Poison, Producer, ensure_topics
from millrace_common.objectstore import get_verified, open_store, sha256_hex
from millrace_common.outbox import OutboxRelay, add_event, outbox_table
from prometheus_client import REGISTRY

from tests.support.kafka import read_topic
from tests.support.waiting import until

pytestmark = pytest.mark.integration


def test_s3_store_round_trip_and_etag(object_store_url: str) -> None:
    store = open_store(object_store_url)
    store.put("sites/a/manifest.json", b'{"v": 1}')
    assert store.get("sites/a/manifest.json") == b'{"v": 1}'
    first = store.get_if_changed("sites/a/manifest.json", None)
    assert first is not None
    assert store.get_if_changed("sites/a/manifest.json", first[1]) is None
    store.put("sites/a/manifest.json", b'{"v": 2}')
    assert store.get_if_changed("sites/a/manifest.json", first[1]) is not None
    with pytest.raises(NotFound):
        store.get("missing")
    with pytest.raises(IntegrityError):
        get_verified(store, "sites/a/manifest.json", sha256_hex(b"other"))


async def test_consumer_loop_dead_letters_poison_and_keeps_flowing(broker: str) -> None:
    await ensure_topics(broker, ["loop-in", DLQ])
    producer = Producer(broker, source="test")
    await producer.start()
    seen: list[bytes] = []

    async def handle(record) -> None:  # type: ignore[no-untyped-def]
        if record.value == b"bad":
            raise Poison("not json")
        seen.append(record.value)

    loop = ConsumerLoop(
        bootstrap=broker,
        topics=["loop-in"],
        group_id="loop-test",
        handler=handle,
        producer=producer,
        name="loop-test",
    )
    task = asyncio.create_task(loop.run())
    for value in (b"a", b"bad", b"b"):
        await producer.send("loop-in", value, key="k", envelope=Envelope.new(type="t", source="s"))
    try:
        await until(lambda: len(seen) >= 2, timeout=60, what="the two good records handled")
    finally:
        task.cancel()
        await producer.stop()
    assert seen == [b"a", b"b"]


@pytest.mark.faults
async def test_consumer_loop_waits_out_a_dependency_and_dead_letters_nothing(broker: str) -> None:
    """A handler whose dependency is away (``Unavailable``) far more times than the dlq
    limit allows other failures: the record waits and is handled once the dependency is
    back. Then a poison record: the only dead letter of this loop is that one."""
    await ensure_topics(broker, ["loop-away", DLQ])
    producer = Producer(broker, source="test")
    await producer.start()
    away_for = 12  # > max_retries_before_dlq (3 here)
    calls: list[bytes] = []

    async def handle(record: Any) -> None:
        if record.value == b"poison":
            raise Poison("never")
        calls.append(record.value)
        if len(calls) <= away_for:
            raise Unavailable("the registry is unreachable")

    loop = ConsumerLoop(
        bootstrap=broker,
        topics=["loop-away"],
        group_id="loop-away-test",
        handler=handle,
        producer=producer,
        name="loop-away-test",
        max_retries_before_dlq=3,
        retry_base=0.01,
    )
    task = asyncio.create_task(loop.run())
    for value in (b"good", b"poison"):
        await producer.send(
            "loop-away", value, key="k", envelope=Envelope.new(type="t", source="s")
        )
    try:
        letters = await read_topic(
            broker,
            DLQ,
            keep=lambda r: DeadLetter.model_validate_json(r.value).consumer == "loop-away-test",
            until=lambda found: len(found) >= 1,
            what="the poison record's dead letter",
            timeout=120,
        )
    finally:
        task.cancel()
        await producer.stop()
    assert calls == [b"good"] * (away_for + 1)
    assert [DeadLetter.model_validate_json(r.value).error for r in letters] == ["never"]


async def test_outbox_relay_publishes_committed_rows(broker: str, database_url: str) -> None:
    engine = make_engine(database_url)
    metadata = sa.MetaData()
    table = outbox_table(metadata, "public")
    metadata.create_all(engine)
    factory = session_factory(engine)
    with factory() as session, session.begin():
        add_event(
            session,
            table,
            topic="outbox-test",
            key="m",
            event_id="e-1",
            value={"hello": 1},
            ce_type="test",
        )
    await ensure_topics(broker, ["outbox-test"])
    producer = Producer(broker, source="test")
    await producer.start()
    relay = OutboxRelay(factory=factory, table=table, producer=producer, source="test")
    published = _sample("millrace_outbox_published_total", source="test", topic="outbox-test")
    assert await relay.relay_once() == 1
    assert _sample("millrace_outbox_oldest_unsent_seconds", source="test") > 0
    assert await relay.relay_once() == 0
    assert _sample("millrace_outbox_oldest_unsent_seconds", source="test") == 0
    assert (
        _sample("millrace_outbox_published_total", source="test", topic="outbox-test")
        == published + 1
    )
    await producer.stop()
    engine.dispose()


def test_outbox_keeps_sent_rows_for_a_while_and_unsent_ones_always(database_url: str) -> None:
    engine = make_engine(database_url)
    metadata = sa.MetaData()
    table = outbox_table(metadata, "public")
    metadata.create_all(engine)
    factory = session_factory(engine)
    now = datetime.now(UTC)
    with factory() as session, session.begin():
        for event_id in ("old-sent", "new-sent", "old-unsent"):
            add_event(session, table, topic="t", key=None, event_id=event_id, value={}, ce_type="t")
        for event_id, column, days in (
            ("old-sent", "sent_at", 8),
            ("new-sent", "sent_at", 6),
            ("old-unsent", "created_at", 30),
        ):
            session.execute(
                table.update()
                .where(table.c.event_id == event_id)
                .values({column: now - timedelta(days=days)})
            )
    relay = OutboxRelay(factory=factory, table=table, producer=None, source="test")  # type: ignore[arg-type]
    assert relay.purge_sent(now=now) == 1
    with factory() as session:
        left = set(session.scalars(sa.select(table.c.event_id)))
    assert {"new-sent", "old-unsent"} <= left and "old-sent" not in left
    engine.dispose()


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_dead_letter_contract_round_trip() -> None:
    letter = DeadLetter(
        original="",
        error="x",
        source_topic="raw",
        partition=0,
        offset=1,
        consumer="c",
        at="2026-01-01T00:00:00Z",
    )
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter
