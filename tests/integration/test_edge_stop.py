"""A SIGTERM ends the agent within its stop timeout whatever its dependencies are doing:
here the broker it follows is killed (aiokafka's stop would retry its last commit
forever), its centre and its registry do not answer. The process exits with 0 or the
signal's own code, and its queue file was closed cleanly with every row in it."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from millrace_cli.processes import Supervisor, free_port, wait_until
from millrace_common.contracts import MODEL_PUBLISHED
from millrace_common.messaging import ensure_topics

from tests.support.edge import agent_status, forwarding_agent

pytestmark = [pytest.mark.integration, pytest.mark.faults]
SITE = "plant-stop"
STOP_TIMEOUT = 6.0


def reading(n: int) -> dict[str, object]:
    return {
        "entity_id": f"s-{n % 3}",
        "ts": f"2026-01-01T02:00:{n:02d}Z",
        "temperature": 60.0 + n,
        "vibration": 0.2,
        "pressure": 3.0,
        "speed": 1500.0,
    }


async def test_sigterm_ends_the_agent_in_time_after_its_broker_died(
    tmp_path: Path, project_dir: Path, supervisor: Supervisor, fresh_broker: str
) -> None:
    await ensure_topics(fresh_broker, [MODEL_PUBLISHED])
    silent = free_port()  # nothing listens: the centre is away
    spec, base = forwarding_agent(
        name="edge-stop",
        site=SITE,
        tmp_path=tmp_path,
        project_dir=project_dir,
        forward_url=f"http://127.0.0.1:{silent}",
        env={
            "MILLRACE_BROKER": fresh_broker,
            "MILLRACE_EDGE_AGENT_REGISTRY_URL": f"http://127.0.0.1:{silent}",
            "MILLRACE_EDGE_AGENT_HEARTBEAT_INTERVAL": "1",
            "MILLRACE_EDGE_AGENT_STOP_TIMEOUT": str(STOP_TIMEOUT),
        },
    )
    agent = Supervisor(tmp_path / "logs")
    running = await asyncio.to_thread(agent.start, spec, timeout=60)
    try:
        await asyncio.to_thread(
            wait_until,
            lambda: agent_status(base)["model_events"] == "following",
            timeout=60,
            what="the agent to join its consumer group",
        )
        posted = httpx.post(
            f"{base}/v1/datasets/machines/records",
            json={"records": [reading(n) for n in range(12)]},
            timeout=30,
        )
        assert posted.status_code == 202

        supervisor.kill(f"tansu-{fresh_broker.rsplit(':', 1)[1]}")  # the broker dies
        await asyncio.to_thread(
            wait_until,
            lambda: agent_status(base)["model_events"] == "connecting",
            timeout=60,
            what="the agent to notice its broker is gone",
        )
        started = time.monotonic()
        os.killpg(running.popen.pid, signal.SIGTERM)
        code = await asyncio.to_thread(running.popen.wait, 60)
        took = time.monotonic() - started
    finally:
        agent.stop_all()

    print(f"SIGTERM to exit: {took:.2f} s (stop timeout {STOP_TIMEOUT} s), exit code {code}")
    assert took < STOP_TIMEOUT
    assert code in (0, -signal.SIGTERM)
    log = running.log_path.read_text()
    assert '"edge_agent_stopped"' in log  # the stop ran to its end: the queue file closed

    queue_file = tmp_path / "site" / "queue.sqlite3"
    assert not Path(f"{queue_file}-wal").exists()  # closed cleanly: the WAL checkpointed away
    db = sqlite3.connect(queue_file)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM records").fetchone() == (12,)
    finally:
        db.close()
