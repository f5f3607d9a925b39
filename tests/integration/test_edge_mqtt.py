"""Records a site's producers publish to its Mosquitto broker reach the centre's ``raw``
through the agent: each once, in order per entity, also those published while the
agent was down (its persistent QoS 1 session keeps them at the broker). A message no
record can be taken from is kept as a dead letter with its reason and counted."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest
from millrace_cli.processes import ProcessSpec, Supervisor, free_port, wait_until

from tests.support.edge import agent_status, first_seen_per_entity, forwarding_agent, read_raw

pytestmark = pytest.mark.integration
SITE = "plant-mq"
MQTT_URL = os.environ.get("MILLRACE_TEST_MQTT", "mqtt://127.0.0.1:1883")


def agent_spec(
    tmp_path: Path, project_dir: Path, *, ingest_port: int, prefix: str
) -> tuple[ProcessSpec, str]:
    return forwarding_agent(
        name="edge-mq",
        site=SITE,
        tmp_path=tmp_path,
        project_dir=project_dir,
        forward_url=f"http://127.0.0.1:{ingest_port}",
        env={
            "MILLRACE_EDGE_AGENT_MQTT_URL": MQTT_URL,
            "MILLRACE_EDGE_AGENT_MQTT_TOPIC": f"{prefix}/{{site}}/{{dataset}}/records",
        },
    )


class Producers:
    """Local producers publishing at QoS 1: one reading per message, or several."""

    def __init__(self, prefix: str, entities: list[str]) -> None:
        self.topic = f"{prefix}/{SITE}/machines/records"
        self.entities = entities
        self.sent: dict[str, list[str]] = {e: [] for e in entities}
        self.count = 0

    def reading(self, entity: str) -> dict[str, Any]:
        self.count += 1
        record: dict[str, Any] = {
            "entity_id": entity,
            "ts": 1767225600 + self.count,
            "temperature": 60.0 + self.count,
            "vibration": 0.2,
            "pressure": 3.0,
            "speed": 1500.0,
            "event_id": f"{entity}-mq-{self.count}",
        }
        self.sent[entity].append(record["event_id"])
        return record

    async def publish_round(self, client: aiomqtt.Client) -> None:
        """One message per entity, then one list holding a reading of each."""
        for entity in self.entities:
            await client.publish(self.topic, orjson.dumps(self.reading(entity)), qos=1)
        batch = [self.reading(entity) for entity in self.entities]
        await client.publish(self.topic, orjson.dumps(batch), qos=1)

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.sent.values())


def mqtt_client(identifier: str | None = None) -> aiomqtt.Client:
    host, port = MQTT_URL.removeprefix("mqtt://").split(":")
    return aiomqtt.Client(
        host,
        int(port),
        identifier=identifier or f"producer-{secrets.token_hex(4)}",
        clean_session=True,
    )


async def forget_session(tmp_path: Path) -> None:
    """End the agent's persistent session, so the shared broker does not keep it."""
    instance = (tmp_path / "site" / "instance-id").read_text().strip()
    async with mqtt_client(f"millrace-edge-agent.{SITE}.{instance}"):
        pass


async def test_mqtt_records_reach_raw_once_in_order_also_across_a_restart(
    tmp_path: Path, project_dir: Path, ingest_port: int, broker: str
) -> None:
    prefix = f"test-{secrets.token_hex(4)}"
    producers = Producers(prefix, [f"q-{prefix}-{i}" for i in range(3)])
    spec, base = agent_spec(tmp_path, project_dir, ingest_port=ingest_port, prefix=prefix)
    supervisor = Supervisor(tmp_path / "logs")
    try:
        supervisor.start(spec, timeout=60)
        wait_until(
            lambda: agent_status(base)["mqtt"]["state"] == "subscribed",
            timeout=30,
            what="the agent to subscribe",
        )
        async with mqtt_client() as client:
            for _ in range(4):
                await producers.publish_round(client)
        wait_until(
            lambda: agent_status(base)["forwarded"] == producers.total,
            timeout=60,
            what="the first records to reach the centre",
        )

        supervisor.stop("edge-mq")  # the broker keeps what comes next for its session
        async with mqtt_client() as client:
            for _ in range(3):
                await producers.publish_round(client)
        supervisor.start(spec, timeout=60)
        wait_until(
            lambda: agent_status(base)["forwarded"] == producers.total - 24,
            timeout=60,
            what="what was published while the agent was down to reach the centre",
        )
        state = agent_status(base)
    finally:
        supervisor.stop_all()
        await forget_session(tmp_path)

    assert state["mqtt"]["state"] == "subscribed"
    assert state["mqtt"]["messages_queued"] == 3 * 4  # since the restart
    assert state["queue_depth"] == 0 and state["drops"] == {}
    assert producers.total == 7 * 6
    raw = await read_raw(broker, entities=set(producers.entities), until=producers.total)
    assert len(raw) == producers.total  # none twice
    assert first_seen_per_entity(raw) == producers.sent  # in order per entity


async def test_a_malformed_message_is_kept_with_its_reason_and_counted(
    tmp_path: Path, project_dir: Path, ingest_port: int, broker: str
) -> None:
    prefix = f"test-{secrets.token_hex(4)}"
    producers = Producers(prefix, [f"b-{prefix}-0"])
    spec, base = agent_spec(tmp_path, project_dir, ingest_port=ingest_port, prefix=prefix)
    good = producers.reading(producers.entities[0])
    del good["event_id"]  # the agent derives one from the message
    supervisor = Supervisor(tmp_path / "logs")
    try:
        supervisor.start(spec, timeout=60)
        wait_until(
            lambda: agent_status(base)["mqtt"]["state"] == "subscribed",
            timeout=30,
            what="the agent to subscribe",
        )
        async with mqtt_client() as client:
            await client.publish(producers.topic, b"temperature=71.2", qos=1)
            await client.publish(producers.topic, orjson.dumps({**good, "speed": "fast"}), qos=1)
            await client.publish(f"{prefix}/{SITE}/lathes/records", orjson.dumps(good), qos=1)
            await client.publish(producers.topic, orjson.dumps(good), qos=1)
        wait_until(
            lambda: agent_status(base)["forwarded"] == 1,
            timeout=30,
            what="the good record to reach the centre",
        )
        state = agent_status(base)
        letters = httpx.get(f"{base}/v1/dead-letters").json()["dead_letters"]
        metrics = httpx.get(f"{base}/metrics").text
    finally:
        supervisor.stop_all()
        await forget_session(tmp_path)

    assert state["mqtt"]["messages_invalid"] == 3 and state["mqtt"]["messages_queued"] == 1
    assert state["drops"] == {"mqtt_message_invalid": 3}
    assert 'millrace_edge_mqtt_messages_total{outcome="invalid"} 3.0' in metrics
    reasons = {(d["topic"].split("/")[-2], d["payload"][:11]): d["reason"] for d in letters}
    assert "not JSON" in reasons[("machines", "temperature")]
    assert "speed" in reasons[("machines", '{"entity_id')]
    assert "unknown dataset 'lathes'" in reasons[("lathes", '{"entity_id')]
    raw = await read_raw(broker, entities={good["entity_id"]}, until=1)
    assert raw[0]["event_id"].startswith("mqtt:") and raw[0]["temperature"] == good["temperature"]


async def test_no_puback_before_the_record_is_on_disk(tmp_path: Path, project_dir: Path) -> None:
    """A full ``reject-new`` queue holds the agent's PUBACK back; a ``kill -9`` then
    loses nothing, because the broker delivers the message again to the restarted agent
    (an auto-acknowledging client would have lost it)."""
    prefix = f"test-{secrets.token_hex(4)}"
    producers = Producers(prefix, [f"k-{prefix}-{i}" for i in range(3)])
    spec, base = agent_spec(tmp_path, project_dir, ingest_port=free_port(), prefix=prefix)
    spec.env |= {
        "MILLRACE_EDGE_AGENT_FORWARD_URL": "",  # records stay queued, so the queue fills
        "MILLRACE_EDGE_AGENT_QUEUE_MAX_ROWS": "2",
        "MILLRACE_EDGE_AGENT_QUEUE_POLICY": "reject-new",
    }
    supervisor = Supervisor(tmp_path / "logs")
    try:
        supervisor.start(spec, timeout=60)
        wait_until(
            lambda: agent_status(base)["mqtt"]["state"] == "subscribed",
            timeout=30,
            what="the agent to subscribe",
        )
        async with mqtt_client() as client:
            for entity in producers.entities:
                await client.publish(
                    producers.topic, orjson.dumps(producers.reading(entity)), qos=1
                )
        wait_until(
            lambda: agent_status(base)["mqtt"]["waiting_for_room"],
            timeout=30,
            what="the third message to wait for room",
        )
        supervisor.kill("edge-mq")

        spec.env["MILLRACE_EDGE_AGENT_QUEUE_MAX_ROWS"] = "100"
        supervisor.start(spec, timeout=60)
        wait_until(
            lambda: agent_status(base)["queue_depth"] == 3,
            timeout=30,
            what="the broker to deliver the unacknowledged message again",
        )
        state = agent_status(base)
    finally:
        supervisor.stop_all()
        await forget_session(tmp_path)
    assert state["drops"] == {}
