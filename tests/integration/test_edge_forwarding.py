"""Store and forward through a link the test owns: ingest and the broker are real
processes, the agent is a real process, and between agent and ingest sits a TCP proxy
the test cuts and restores. Nothing accepted by the agent may be lost or reordered per
entity, even across a ``kill -9`` during the outage; a full queue follows its policy
and counts exactly what the centre will miss."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from millrace_cli.processes import ProcessSpec, Supervisor, wait_until

from tests.support.edge import (
    LinkProxy,
    agent_status,
    first_seen_per_entity,
    forwarding_agent,
    read_raw,
)

pytestmark = pytest.mark.integration
SITE = "plant-fw"


def agent_spec(
    tmp_path: Path, project_dir: Path, link: LinkProxy, **extra: str
) -> tuple[ProcessSpec, str]:
    return forwarding_agent(
        name="edge-fw",
        site=SITE,
        tmp_path=tmp_path,
        project_dir=project_dir,
        forward_url=f"http://127.0.0.1:{link.port}",
        env={"MILLRACE_EDGE_AGENT_FORWARD_BATCH": "7", **extra},
    )


class Producer:
    """A local producer: numbered readings per entity, some with their own event ids."""

    def __init__(self, base: str, entities: list[str]) -> None:
        self.base = base
        self.entities = entities
        self.sent: dict[str, list[str]] = {e: [] for e in entities}
        self.count = 0

    def send_round(self) -> httpx.Response:
        records = []
        for entity in self.entities:
            self.count += 1
            record: dict[str, Any] = {
                "entity_id": entity,
                "ts": f"2026-01-01T00:{self.count // 60:02d}:{self.count % 60:02d}Z",
                "temperature": 60.0 + self.count,
                "vibration": 0.2,
                "pressure": 3.0,
                "speed": 1500.0,
            }
            if self.count % 2:
                record["event_id"] = f"{entity}-own-{self.count}"
            records.append(record)
        response = httpx.post(
            f"{self.base}/v1/datasets/machines/records", json={"records": records}, timeout=10
        )
        if response.status_code == 202:
            for record, event_id in zip(records, response.json()["event_ids"], strict=True):
                assert record.get("event_id", event_id) == event_id
                self.sent[record["entity_id"]].append(event_id)
        return response


async def test_nothing_is_lost_through_an_outage_and_a_kill_9(
    tmp_path: Path, project_dir: Path, link: LinkProxy, broker: str
) -> None:
    supervisor = Supervisor(tmp_path / "logs")
    spec, base = agent_spec(tmp_path, project_dir, link)
    tag = secrets.token_hex(3)
    producer = Producer(base, [f"m-{tag}-{i}" for i in range(3)])
    try:
        supervisor.start(spec, timeout=60)
        for _ in range(5):
            assert producer.send_round().status_code == 202
        wait_until(
            lambda: agent_status(base)["forwarded"] == 15,
            timeout=30,
            what="the first records to reach the centre",
        )

        link.cut()
        for _ in range(10):
            assert producer.send_round().status_code == 202
        wait_until(
            lambda: agent_status(base)["forward_failures"] > 0,
            timeout=30,
            what="the agent to notice the link is down",
        )
        assert agent_status(base)["queue_depth"] > 0
        supervisor.kill("edge-fw")  # kill -9 in the middle of the outage

        supervisor.start(spec, timeout=60)
        assert agent_status(base)["queue_depth"] > 0  # what was queued is still there
        for _ in range(5):
            assert producer.send_round().status_code == 202
        link.restore()
        wait_until(
            lambda: agent_status(base)["queue_depth"] == 0,
            timeout=60,
            what="the queue to drain once the link is back",
        )
        assert agent_status(base)["drops"] == {}
    finally:
        supervisor.stop_all()

    total = sum(len(ids) for ids in producer.sent.values())
    assert total == 60
    raw = await read_raw(broker, entities=set(producer.entities), until=total)
    assert first_seen_per_entity(raw) == producer.sent  # each once, in order per entity


async def test_a_full_queue_drops_oldest_and_counts_what_the_centre_misses(
    tmp_path: Path, project_dir: Path, link: LinkProxy, broker: str
) -> None:
    supervisor = Supervisor(tmp_path / "logs")
    spec, base = agent_spec(
        tmp_path,
        project_dir,
        link,
        MILLRACE_EDGE_AGENT_QUEUE_MAX_ROWS="8",
        MILLRACE_EDGE_AGENT_QUEUE_POLICY="drop-oldest",
    )
    tag = secrets.token_hex(3)
    producer = Producer(base, [f"d-{tag}-{i}" for i in range(2)])
    link.cut()
    try:
        supervisor.start(spec, timeout=60)
        for _ in range(10):
            assert producer.send_round().status_code == 202
        state = agent_status(base)
        assert state["queue_depth"] == 8
        dropped = state["drops"]["queue_full_dropped_oldest"]
        assert dropped == 12
        assert (
            f'millrace_edge_records_dropped_total{{reason="queue_full_dropped_oldest"}} '
            f"{dropped}.0" in httpx.get(f"{base}/metrics").text
        )
        link.restore()
        wait_until(
            lambda: agent_status(base)["queue_depth"] == 0,
            timeout=60,
            what="the queue to drain once the link is back",
        )
    finally:
        supervisor.stop_all()

    sent = sum(len(ids) for ids in producer.sent.values())
    raw = await read_raw(broker, entities=set(producer.entities), until=sent - dropped)
    arrived = {r["event_id"] for r in raw}
    assert len(arrived) == sent - dropped  # what the centre misses is what was counted
    newest = {e: ids[-4:] for e, ids in producer.sent.items()}
    assert first_seen_per_entity(raw) == newest


async def test_pre_aggregation_sends_one_record_per_entity_and_window_once(
    tmp_path: Path, project_dir: Path, link: LinkProxy, broker: str
) -> None:
    supervisor = Supervisor(tmp_path / "logs")
    spec, base = agent_spec(
        tmp_path,
        project_dir,
        link,
        MILLRACE_EDGE_AGENT_FORWARD_MODE="aggregate",
        MILLRACE_EDGE_AGENT_AGGREGATE_WINDOW="60s",
        MILLRACE_EDGE_AGENT_AGGREGATE_GRACE="2s",
    )
    tag = secrets.token_hex(3)
    entities = [f"g-{tag}-{i}" for i in range(4)]
    start = 1767236400  # 2026-01-01T03:00:00Z, a minute boundary
    readings = [
        {
            "entity_id": entity,
            "ts": start + 10 * tick,
            "temperature": 50.0 + tick + i,
            "vibration": 0.1 * i,
            "pressure": 3.0,
            "speed": 1500.0,
            "failure_within_1h": int(i == 0 and tick == 17),
        }
        for tick in range(30)
        for i, entity in enumerate(entities)
    ]
    try:
        supervisor.start(spec, timeout=60)
        for chunk in range(0, 120, 20):  # five ticks of every entity per request
            posted = httpx.post(
                f"{base}/v1/datasets/machines/records",
                json={"records": readings[chunk : chunk + 20]},
                timeout=10,
            )
            assert posted.status_code == 202, posted.text
        wait_until(
            lambda: agent_status(base)["queue_depth"] == 0,
            timeout=30,
            what="every window to close and reach the centre",
        )
        state = agent_status(base)
    finally:
        supervisor.stop_all()

    assert (state["records_in"], state["records_out"], state["drops"]) == (120, 20, {})
    expected = {}
    for i, entity in enumerate(entities):
        for window in range(5):
            ticks = range(6 * window, 6 * window + 6)
            expected[f"agg:{SITE}:{entity}:{start + 60 * window}"] = (
                entity,
                start + 60 * (window + 1),
                sum(50.0 + t + i for t in ticks) / 6,
                int(i == 0 and 17 in ticks),
            )
    raw = await read_raw(broker, entities=set(entities), until=len(expected))
    assert len(raw) == len(expected)  # once each
    got = {
        r["event_id"]: (
            r["entity_id"],
            int(datetime.fromisoformat(r["ts"]).timestamp()),
            r["temperature"],
            r["failure_within_1h"],
        )
        for r in raw
    }
    assert got.keys() == expected.keys()
    for event_id, (entity, ends, temperature, failure) in expected.items():
        assert got[event_id][:2] == (entity, ends)
        assert got[event_id][2] == pytest.approx(temperature)
        assert got[event_id][3] == failure
    windows_per_entity = first_seen_per_entity(raw)
    assert all(
        ids == sorted(ids, key=lambda e: int(e.rsplit(":", 1)[1]))
        for ids in windows_per_entity.values()
    )  # in order per entity
