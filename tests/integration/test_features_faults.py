"""The features worker against faults, as processes on a real broker and Postgres: two
workers sharing the stream when one is killed, a broker that comes back empty, and a
database that goes away and comes back. Each counts records produced against rows stored
(nothing lost, nothing doubled) and checks the windows equal an uninterrupted run's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from millrace_cli.processes import ProcessSpec, Supervisor, free_port, tansu_spec, wait_until
from sqlalchemy.engine import make_url

from tests.support.edge import LinkProxy
from tests.support.features import (
    base_url,
    count_rows,
    expected_features,
    factory_raw,
    features_process,
    stored_features,
)
from tests.support.kafka import produce_plain

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture
def own_broker(supervisor: Supervisor) -> Iterator[ProcessSpec]:
    """A broker of this test's own, so a test can stop it and start an empty one."""
    spec = tansu_spec(free_port())
    spec.name = f"tansu-faults-{spec.ready_port}"
    supervisor.start(spec)
    yield spec
    supervisor.stop(spec.name)


def _address(spec: ProcessSpec) -> str:
    return f"127.0.0.1:{spec.ready_port}"


def _send(broker: str, records: list[dict[str, Any]]) -> None:
    produce_plain(
        broker,
        "raw",
        [orjson.dumps(r) for r in records],
        [r["entity_id"].encode() for r in records],
    )


def _readiness(spec: ProcessSpec) -> tuple[int, str]:
    try:
        answer = httpx.get(f"{base_url(spec)}/readyz", timeout=5)
    except httpx.HTTPError as exc:
        return 0, repr(exc)
    return answer.status_code, answer.json().get("detail", "")


def _worker(
    own_broker: ProcessSpec,
    database_url: str,
    object_store_url: str,
    project_dir: Path,
    tmp_path: Path,
    **kwargs: Any,
) -> ProcessSpec:
    return features_process(
        broker=_address(own_broker),
        database_url=database_url,
        object_store_url=object_store_url,
        project_dir=project_dir,
        data_dir=tmp_path / f"worker-{time.monotonic_ns()}",
        **kwargs,
    )


def test_two_workers_share_the_stream_and_a_kill_9_of_one_loses_and_doubles_nothing(
    supervisor: Supervisor,
    own_broker: ProcessSpec,
    database_url: str,
    object_store_url: str,
    project_dir: Path,
    tmp_path: Path,
) -> None:
    broker = _address(own_broker)
    records = factory_raw(6000, seed=11, machines=200, tag="two")
    workers = [
        _worker(own_broker, database_url, object_store_url, project_dir, tmp_path, group="pair")
        for _ in range(2)
    ]
    for worker in workers:
        supervisor.start(worker, timeout=120)
    _send(broker, records[:4000])
    wait_until(lambda: count_rows(database_url) > 1000, timeout=120, what="both workers under way")
    supervisor.kill(workers[0].name)
    _send(broker, records[4000:])
    wait_until(
        lambda: count_rows(database_url) >= len(records),
        timeout=240,
        what="every row, from the surviving worker after the rebalance",
    )
    assert count_rows(database_url) == len(records)
    assert stored_features(database_url) == expected_features(project_dir, records)
    supervisor.stop(workers[1].name)


def test_windows_resume_exactly_after_the_broker_comes_back_empty(
    supervisor: Supervisor,
    own_broker: ProcessSpec,
    database_url: str,
    object_store_url: str,
    project_dir: Path,
    tmp_path: Path,
) -> None:
    """As when ``make dev`` restarts: the in-memory broker has lost every record and
    offset, the database has kept its rows; windows go on from the database."""
    records = factory_raw(1200, seed=12, machines=30, tag="again")
    worker = _worker(own_broker, database_url, object_store_url, project_dir, tmp_path)
    supervisor.start(worker, timeout=120)
    _send(_address(own_broker), records[:600])
    wait_until(lambda: count_rows(database_url) >= 600, timeout=120, what="the first 600 rows")
    supervisor.stop(worker.name)
    supervisor.stop(own_broker.name)
    supervisor.start(own_broker)  # the same port, nothing on it
    started = time.monotonic()
    supervisor.start(worker, timeout=120)
    ready_after = time.monotonic() - started
    _send(_address(own_broker), records[600:])
    wait_until(lambda: count_rows(database_url) >= len(records), timeout=120, what="every row")
    assert count_rows(database_url) == len(records)
    assert stored_features(database_url) == expected_features(project_dir, records)
    print(f"empty broker: the worker was ready {ready_after:.1f} s after its restart")
    assert ready_after < 30, f"ready {ready_after:.0f} s after the restart"
    supervisor.stop(worker.name)


def test_a_database_outage_is_ridden_out_and_readiness_says_so(
    supervisor: Supervisor,
    own_broker: ProcessSpec,
    database_url: str,
    object_store_url: str,
    project_dir: Path,
    tmp_path: Path,
) -> None:
    url = make_url(database_url)
    proxy = LinkProxy(url.port or 5432)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    records = factory_raw(3000, seed=13, machines=50, tag="blink")
    worker = _worker(own_broker, through_proxy, object_store_url, project_dir, tmp_path)
    try:
        supervisor.start(worker, timeout=120)
        _send(_address(own_broker), records[:1000])
        wait_until(lambda: count_rows(database_url) >= 1000, timeout=120, what="the first rows")
        proxy.cut()
        _send(_address(own_broker), records[1000:2000])
        wait_until(
            lambda: _readiness(worker)[0] == 503 and "database" in _readiness(worker)[1],
            timeout=60,
            what="readiness to name the database",
        )
        for _ in range(5):  # connections reset over and over while it is away
            time.sleep(1)
            proxy.cut()
        assert not supervisor.failed(), "the worker exited while the database was away"
        proxy.restore()
        back = time.monotonic()
        wait_until(lambda: _readiness(worker)[0] == 200, timeout=60, what="ready again")
        green_after = time.monotonic() - back
        _send(_address(own_broker), records[2000:])
        wait_until(lambda: count_rows(database_url) >= len(records), timeout=120, what="every row")
        assert count_rows(database_url) == len(records)
        assert stored_features(database_url) == expected_features(project_dir, records)
        print(f"database outage: ready {green_after:.1f} s after the database returned")
        assert green_after < 15, f"ready {green_after:.1f} s after the database returned"
    finally:
        supervisor.stop(worker.name)
        proxy.close()
