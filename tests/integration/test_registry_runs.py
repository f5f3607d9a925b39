"""A version and the end of the run that produced it are one transaction (Postgres, the
registry under uvicorn): a reader polling while trainers register never sees a version
whose run is still ``running``."""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from millrace_common.objectstore import ObjectStore

from tests.support.registry import registration

pytestmark = pytest.mark.integration
ATTEMPTS = 12


class Reads:
    """How many full reads the poller made; a registrant waits for a fresh one, so reads
    are spread through the registrations instead of landing before or after them all."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def done(self) -> None:
        with self.changed:
            self.count += 1
            self.changed.notify_all()

    def wait_for_next(self) -> None:
        with self.changed:
            target = self.count + 1
            assert self.changed.wait_for(lambda: self.count >= target, timeout=30)


def train_and_register(
    registry_url: str, store: ObjectStore, model: str, i: int, reads: Reads
) -> int:
    """What the trainer does: report the run started, then register the version carrying
    the run's final record."""
    run_id, started = f"run-{i}", datetime.now(UTC).isoformat()
    with httpx.Client(base_url=registry_url, timeout=60) as client:
        running = client.put(
            f"/v1/models/{model}/runs/{run_id}",
            json={"request_id": f"req-{i}", "status": "running", "started_at": started},
        )
        assert running.status_code == 200, running.text
        reads.wait_for_next()
        body = registration(f"req-{i}", 0.5 + i / 100, store=store) | {
            "run": {
                "run_id": run_id,
                "timings": {"fit": 0.1},
                "logs_uri": f"s3://b/runs/{model}/{run_id}/run-log.json",
                "started_at": started,
                "finished_at": datetime.now(UTC).isoformat(),
            }
        }
        created = client.post(f"/v1/models/{model}/versions", json=body)
        assert created.status_code == 201, created.text
        return int(created.json()["version"])


def unfinished(client: httpx.Client, model: str) -> list[str]:
    """Versions visible now whose run is not finished. Versions are read first: a run
    finished with its version is committed no later than the version, so the second read
    must show it."""
    versions = client.get(f"/v1/models/{model}/versions").json()
    runs = client.get(f"/v1/models/{model}/runs", params={"limit": 1000}).json()
    finished = {r["version"]: r for r in runs if r["status"] == "succeeded"}
    return [
        f"v{v['version']} ({v['request_id']})"
        for v in versions
        if finished.get(v["version"], {}).get("request_id") != v["request_id"]
    ]


def test_no_reader_sees_a_version_before_its_run_is_finished(
    registry_url: str, registry_store: ObjectStore
) -> None:
    model = f"runs-{secrets.token_hex(3)}"
    stop = threading.Event()
    seen: list[int] = []
    violations: list[str] = []
    reads = Reads()

    def poll() -> None:
        """Read until told to stop, then once more: the last read follows every
        registration (on a busy machine the writers may all finish between two reads)."""
        with httpx.Client(base_url=registry_url, timeout=30) as client:
            while True:
                last = stop.is_set()
                if client.get(f"/v1/models/{model}").status_code == 200:
                    violations.extend(unfinished(client, model))
                    seen.append(len(client.get(f"/v1/models/{model}/versions").json()))
                    reads.done()
                if last:
                    return

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            versions = list(
                pool.map(
                    lambda i: train_and_register(registry_url, registry_store, model, i, reads),
                    range(ATTEMPTS),
                )
            )
    finally:
        stop.set()
        reader.join(timeout=60)
    assert sorted(versions) == list(range(1, ATTEMPTS + 1))
    assert seen and max(seen) == ATTEMPTS, "the reader never saw the registrations land"
    assert any(0 < count < ATTEMPTS for count in seen), "the reader never read mid-race"
    assert violations == []
    with httpx.Client(base_url=registry_url, timeout=30) as client:
        assert unfinished(client, model) == []
        runs: list[dict[str, Any]] = client.get(f"/v1/models/{model}/runs").json()
    assert sorted(r["version"] for r in runs) == list(range(1, ATTEMPTS + 1))
