"""What an MQTT message becomes: the same records a REST request would queue, with ids
that make a redelivered message a repeat, or a dead letter with its reason."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from millrace_common.errors import InvalidInput
from millrace_common.objectstore import MemoryStore
from millrace_edge_agent.adapters.mqtt import BrokerAddress
from millrace_edge_agent.app import bootstrap
from millrace_edge_agent.config import Settings
from millrace_edge_agent.mqtt_intake import Incoming, MessageInvalid, TopicPattern, records_of
from millrace_edge_agent.runtime import Runtime
from millrace_edge_agent.status import describe

from tests.support.waiting import until

SITE = "plant-1"
TOPIC = f"millrace/{SITE}/machines/records"


def reading(entity: str = "m-1", **extra: object) -> dict[str, object]:
    return {
        "entity_id": entity,
        "ts": "2026-01-01T00:00:00Z",
        "temperature": 70.0,
        "vibration": 0.1,
        "pressure": 3.0,
        "speed": 1500.0,
        **extra,
    }


def agent(tmp_path: Path, project_dir: Path, **settings: object) -> Runtime:
    return bootstrap(
        Settings(
            site=SITE,
            cache_dir=str(tmp_path),
            project=str(project_dir),
            mqtt_url="mqtt://edge:secret@127.0.0.1:1883",
            **settings,
        ),
        store=MemoryStore(),
    )


def test_the_topic_pattern_names_the_dataset() -> None:
    pattern = TopicPattern.parse("millrace/{site}/{dataset}/records", site=SITE)
    assert pattern.filter == f"millrace/{SITE}/+/records"
    assert pattern.dataset_of(TOPIC) == "machines"
    assert TopicPattern.parse("+/line-{site}/{dataset}/#", site="7").filter == "+/line-7/+/#"
    for bad in ("millrace/records", "a/{dataset}/{dataset}", "#/{dataset}", "{zone}/{dataset}"):
        with pytest.raises(InvalidInput) as caught:
            TopicPattern.parse(bad, site=SITE)
        assert caught.value.field == "mqtt_topic"
    with pytest.raises(MessageInvalid, match="names no dataset"):
        pattern.dataset_of("millrace//")


def test_a_message_is_a_record_or_a_list_of_them_with_repeatable_ids() -> None:
    one = orjson.dumps(reading())
    records = records_of(site=SITE, topic=TOPIC, payload=one, max_records=10)
    again = records_of(site=SITE, topic=TOPIC, payload=one, max_records=10)
    elsewhere = records_of(site="plant-2", topic=TOPIC, payload=one, max_records=10)
    assert records == again and records[0]["event_id"].startswith("mqtt:")
    assert records[0]["event_id"] != elsewhere[0]["event_id"]
    listed = orjson.dumps([reading(event_id="own-1"), reading()])
    ids = [
        r["event_id"] for r in records_of(site=SITE, topic=TOPIC, payload=listed, max_records=10)
    ]
    assert ids[0] == "own-1" and ids[1].endswith(":1")
    for payload, reason in [
        (b"{not json", "not JSON"),
        (b"[]", "non-empty list"),
        (b"42", "JSON object"),
        (orjson.dumps([reading()] * 3), "at most 2 records"),
    ]:
        with pytest.raises(MessageInvalid, match=reason):
            records_of(site=SITE, topic=TOPIC, payload=payload, max_records=2)


def test_the_broker_address_keeps_its_password_out_of_logs() -> None:
    address = BrokerAddress.parse("mqtts://edge:s%40cret@broker.local")
    assert (address.port, address.tls, address.password) == (8883, True, "s@cret")
    assert str(address) == "mqtts://edge@broker.local:8883"
    with pytest.raises(InvalidInput, match="mqtt://"):
        BrokerAddress.parse("http://broker.local")


async def test_a_redelivered_message_is_queued_once(tmp_path: Path, project_dir: Path) -> None:
    runtime = agent(tmp_path, project_dir)
    assert runtime.mqtt is not None and runtime.mqtt_intake is not None
    assert runtime.mqtt.topic_filter == f"millrace/{SITE}/+/records"
    assert runtime.mqtt.client_id == f"millrace-edge-agent.{SITE}.{runtime.instance_id}"
    payload = orjson.dumps([reading("m-1"), reading("m-2")])
    await runtime.mqtt_intake.take([Incoming(TOPIC, payload)])
    await runtime.mqtt_intake.take([Incoming(TOPIC, payload)])  # its PUBACK was lost
    assert runtime.queues is not None and runtime.queues.records.depth() == 2
    assert runtime.mqtt_intake.status.queued == 2


async def test_a_malformed_message_becomes_a_dead_letter_with_its_reason(
    tmp_path: Path, project_dir: Path
) -> None:
    runtime = agent(tmp_path, project_dir)
    assert runtime.mqtt_intake is not None and runtime.queues is not None
    bad = orjson.dumps([reading(), reading(temperature="hot")])
    await runtime.mqtt_intake.take([Incoming(TOPIC, bad)])
    [letter] = runtime.queues.dead_letters.newest(10)
    assert (letter.source, letter.topic, letter.payload) == ("mqtt", TOPIC, bad)
    assert "records[1].temperature" in letter.reason
    assert runtime.queues.records.depth() == 0  # none of the message, like a 422 over REST
    assert runtime.queues.records.drops() == {"mqtt_message_invalid": 1}
    assert describe(runtime).mqtt.model_dump()["messages_invalid"] == 1


async def test_messages_taken_together_keep_the_good_and_refuse_the_bad(
    tmp_path: Path, project_dir: Path
) -> None:
    runtime = agent(tmp_path, project_dir, queue_max_rows=3)
    assert runtime.mqtt_intake is not None and runtime.queues is not None
    await runtime.mqtt_intake.take(
        [
            Incoming(TOPIC, orjson.dumps(reading("m-1"))),
            Incoming(f"millrace/{SITE}/lathes/records", orjson.dumps(reading("m-2"))),
            Incoming(TOPIC, orjson.dumps([reading(f"m-{i}") for i in range(4)])),
            Incoming(TOPIC, orjson.dumps(reading("m-3"))),
        ]
    )
    assert [q.entity_id for q in runtime.queues.records.peek(10)] == ["m-1", "m-3"]
    reasons = sorted(letter.reason for letter in runtime.queues.dead_letters.newest(10))
    assert reasons == ["at most 3 records per message", "unknown dataset 'lathes'"]
    assert runtime.mqtt_intake.status.queued == 2


async def test_a_full_reject_new_queue_leaves_the_message_with_the_broker(
    tmp_path: Path, project_dir: Path
) -> None:
    """No PUBACK (``take`` does not return) until there is room, and nothing is counted
    as dropped: the broker still has the message."""
    runtime = agent(tmp_path, project_dir, queue_max_rows=1, queue_policy="reject-new")
    assert runtime.mqtt_intake is not None and runtime.queues is not None
    await runtime.mqtt_intake.take([Incoming(TOPIC, orjson.dumps(reading("m-1")))])
    waiting = asyncio.create_task(
        runtime.mqtt_intake.take([Incoming(TOPIC, orjson.dumps(reading("m-2")))])
    )
    intake = runtime.mqtt_intake
    await until(
        lambda: intake.status.waiting_for_room, timeout=30, what="the intake to wait for room"
    )
    assert not waiting.done()
    records = runtime.queues.records
    records.ack([q.seq for q in records.peek(10)])  # the centre took m-1
    await asyncio.wait_for(waiting, timeout=30)
    assert [q.entity_id for q in runtime.queues.records.peek(10)] == ["m-2"]
    assert runtime.queues.records.drops() == {}
