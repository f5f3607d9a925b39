"""One record the centre will never take does not hold up the site's queue: the agent and
the centre's ingest are real processes, and ingest refuses two of the agent's records
for good, one over its record size (a 413 naming ``records[i].event_id``) and one that
makes any body holding it over its body limit (a 413 naming nothing, found by halving
the batch). Every other record reaches ``raw`` in order per entity; the two are the
agent's dead letters with ingest's reason, counted, in /v1/status."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from millrace_cli.processes import Supervisor, wait_until

from tests.support.edge import agent_status, first_seen_per_entity, forwarding_agent, read_raw
from tests.support.ingest import start_ingest

pytestmark = [pytest.mark.integration, pytest.mark.faults]
SITE = "plant-refusals"
CENTRE_MAX_RECORD = 4_000
CENTRE_MAX_BODY = 40_000


def reading(entity: str, n: int, *, event_id: str | None = None) -> dict[str, Any]:
    return {
        "entity_id": entity,
        "ts": f"2026-01-01T01:{n // 60:02d}:{n % 60:02d}Z",
        "temperature": 60.0 + n,
        "vibration": 0.2,
        "pressure": 3.0,
        "speed": 1500.0,
        "event_id": event_id or f"{entity}-{n}",
    }


async def test_records_the_centre_refuses_are_dead_letters_and_the_rest_arrive(
    tmp_path: Path, project_dir: Path, broker: str
) -> None:
    supervisor = Supervisor(
        tmp_path / "logs",
        base_env={
            "MILLRACE_INGEST_MAX_RECORD_BYTES": str(CENTRE_MAX_RECORD),
            "MILLRACE_INGEST_MAX_BODY_BYTES": str(CENTRE_MAX_BODY),
        },
    )
    tag = secrets.token_hex(3)
    entities = [f"r-{tag}-{i}" for i in range(3)]
    oversized = reading(entities[1], 7, event_id=f"big-{tag}-" + "x" * 2 * CENTRE_MAX_RECORD)
    body_sized = reading(entities[2], 11, event_id=f"huge-{tag}-" + "y" * CENTRE_MAX_BODY)
    sent: dict[str, list[str]] = {e: [] for e in entities}
    try:
        port = start_ingest(
            supervisor, name="ingest-refusals", broker=broker, project_dir=project_dir
        )
        spec, base = forwarding_agent(
            name="edge-refusals",
            site=SITE,
            tmp_path=tmp_path,
            project_dir=project_dir,
            forward_url=f"http://127.0.0.1:{port}",
            env={"MILLRACE_EDGE_AGENT_FORWARD_BATCH": "10"},
        )
        supervisor.start(spec, timeout=60)
        for n in range(20):
            batch = [reading(entity, n) for entity in entities]
            if n == 7:
                batch[1] = oversized
            if n == 11:
                batch[2] = body_sized
            posted = httpx.post(
                f"{base}/v1/datasets/machines/records", json={"records": batch}, timeout=30
            )
            assert posted.status_code == 202, posted.text  # the agent's own limits are wider
            for record in batch:
                if record not in (oversized, body_sized):
                    sent[record["entity_id"]].append(record["event_id"])

        wait_until(
            lambda: agent_status(base)["queue_depth"] == 0,
            timeout=90,
            what="the queue to drain past the refused records",
        )
        state = agent_status(base)
        letters = httpx.get(f"{base}/v1/dead-letters", timeout=10).json()["dead_letters"]
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        supervisor.stop_all()

    total = sum(len(ids) for ids in sent.values())
    assert total == 58
    raw = await read_raw(broker, entities=set(entities), until=total)
    assert first_seen_per_entity(raw) == sent  # every other record, each once, in order
    assert {r["event_id"] for r in raw}.isdisjoint({oversized["event_id"], body_sized["event_id"]})

    assert state["drops"] == {"refused_by_centre": 2}
    assert state["dead_letters"] == 2 and state["forwarded"] == total
    assert 'millrace_edge_dead_letters_total{source="centre"} 2.0' in metrics
    assert 'millrace_edge_records_dropped_total{reason="refused_by_centre"} 2.0' in metrics
    by_entity = {orjson.loads(letter["payload"])["entity_id"]: letter for letter in letters}
    named = by_entity[entities[1]]
    assert (named["source"], named["topic"]) == ("centre", "machines")
    assert "413" in named["reason"] and "records[" in named["reason"]
    assert "event_id" in named["reason"]  # ingest names the record's largest field
    unnamed = by_entity[entities[2]]
    assert "413" in unnamed["reason"] and f"limit is {CENTRE_MAX_BODY}" in unnamed["reason"]
