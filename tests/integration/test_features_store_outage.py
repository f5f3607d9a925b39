"""The object store away while features cuts a snapshot: the train request is a 503 the
caller may retry (never a 500, never a crash), features stays up and ready for its
stream, and the same request succeeds once the store is back."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from millrace_cli.processes import ProcessSpec, Supervisor, free_port
from moto.server import ThreadedMotoServer

from tests.support.features import features_process, load_factory
from tests.support.s3 import start_s3
from tests.support.training import MODEL

pytestmark = [pytest.mark.integration, pytest.mark.faults]


class Store:
    """moto's S3 on a port of its own, stopped and started again on the same port (its
    objects are kept: moto keeps them in this process)."""

    def __init__(self) -> None:
        start_s3()[0].stop()  # sets the AWS variables the services read
        self.port = free_port()
        self.server: ThreadedMotoServer | None = None
        self.start()

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.stop()

    @property
    def url(self) -> str:
        return f"s3://mr-{BUCKET}?endpoint=http://127.0.0.1:{self.port}&region=us-east-1"


BUCKET = secrets.token_hex(4)


@pytest.fixture
def store() -> Iterator[Store]:
    found = Store()
    yield found
    found.stop()


@pytest.fixture
def worker(
    supervisor: Supervisor,
    fresh_broker: str,
    database_url: str,
    store: Store,
    project_dir: Path,
    tmp_path: Path,
) -> Iterator[ProcessSpec]:
    spec = features_process(
        broker=fresh_broker,
        database_url=database_url,
        object_store_url=store.url,
        project_dir=project_dir,
        data_dir=tmp_path,
        env={"MILLRACE_FEATURES_RETRAIN_CHECK_SECONDS": "3600"},
    )
    supervisor.start(spec, timeout=120)
    yield spec
    supervisor.stop(spec.name)


def test_a_snapshot_waits_for_the_store_and_features_stays_up(
    worker: ProcessSpec, supervisor: Supervisor, fresh_broker: str, database_url: str, store: Store
) -> None:
    base = (worker.ready_url or "").removesuffix("/readyz")
    load_factory(fresh_broker, database_url, count=400, total=400, seed=3)
    ask = f"{base}/v1/models/{MODEL}/train-requests"

    store.stop()
    away = httpx.post(ask, json={"reason": "store away"}, timeout=120)
    assert away.status_code == 503, away.text
    assert "object store" in away.json()["message"] and "Retry-After" in away.headers
    assert worker.name not in supervisor.failed()
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200

    store.start()
    back = httpx.post(ask, json={"reason": "store back"}, timeout=120)
    assert back.status_code == 202, back.text
    assert back.json()["snapshot"]["rows"] >= 1
