"""The edge agent against the S3 protocol: it serves what its site's manifest names,
follows a new version, and keeps serving from disk through a store outage and a restart."""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from millrace_cli.processes import ProcessSpec, Supervisor, free_port, script, wait_until
from millrace_common.objectstore import ObjectStore, open_store
from moto.server import ThreadedMotoServer

from tests.support.edge import served_version
from tests.support.models import deploy_to_site
from tests.support.s3 import start_s3

pytestmark = pytest.mark.integration
SITE = "plant-7"
MODEL = "machine-failure"


@pytest.fixture
def s3() -> Iterator[tuple[ThreadedMotoServer, str]]:
    """An S3 server of this test's own, so the test can take it down."""
    server, endpoint = start_s3()
    bucket = f"edge-{secrets.token_hex(4)}"
    yield server, f"s3://{bucket}?endpoint={endpoint}&region=us-east-1"
    server.stop()


def deploy(store: ObjectStore, version: int) -> None:
    deploy_to_site(store, site=SITE, name=MODEL, version=version, seed=version)


def test_serves_the_manifest_and_survives_a_store_outage_and_restart(
    tmp_path: Path, s3: tuple[ThreadedMotoServer, str]
) -> None:
    server, url = s3
    store = open_store(url)
    deploy(store, 1)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    supervisor = Supervisor(tmp_path / "logs")
    env = {
        "MILLRACE_OBJECT_STORE": url,
        "MILLRACE_EDGE_AGENT_PORT": str(port),
        "MILLRACE_EDGE_AGENT_CACHE_DIR": str(tmp_path / "cache"),
        "MILLRACE_EDGE_AGENT_POLL_INTERVAL": "0.3",
        "MILLRACE_EDGE_AGENT_MAX_BACKOFF": "2",
        "MILLRACE_BROKER": "127.0.0.1:1",
    }  # no Kafka at this site
    spec = ProcessSpec(
        name="edge",
        argv=[script("millrace-edge-agent"), "run", "--site", SITE],
        env=env,
        ready_url=f"{base}/readyz",
    )
    try:
        supervisor.start(spec, timeout=60)
        assert served_version(base, MODEL) == 1
        deploy(store, 2)
        wait_until(
            lambda: served_version(base, MODEL) == 2, timeout=30, what="version 2 at the edge"
        )

        server.stop()
        wait_until(
            lambda: httpx.get(f"{base}/v1/status").json()["consecutive_failures"] > 0,
            timeout=60,
            what="the agent to notice the store is down",
        )
        assert served_version(base, MODEL) == 2
        status = httpx.get(f"{base}/v1/status").json()
        assert status["last_error"] and status["site"] == SITE
        assert "millrace_edge_sync_failures_total" in httpx.get(f"{base}/metrics").text

        running = supervisor.procs["edge"]
        supervisor.restart("edge", timeout=60)  # SIGTERM, then start with the store still down
        # uvicorn re-raises the signal after its graceful shutdown
        assert running.popen.returncode in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in running.log_path.read_text()
        assert served_version(base, MODEL) == 2
        models = httpx.get(f"{base}/v1/status").json()["models"]
        assert [(m["name"], m["version"]) for m in models] == [(MODEL, 2)]
    finally:
        supervisor.stop_all()
