"""A project that changes without a restart: after ``millrace.yaml`` gains a dataset and a
feature set, SIGHUP makes ingest accept the new dataset's records and the features worker
compute the new feature set's rows, while the stream of the old one goes on; a spec that
does not load is refused, and the services keep the project they have."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from millrace_cli.processes import ProcessSpec, Supervisor, wait_until
from millrace_common.db import make_engine
from millrace_common.feature_store import offline_rows

from tests.support.paths import FACTORY

pytestmark = pytest.mark.integration

PUMPS = """
  pumps:
    fields: {flow: float}
"""
PUMP_FLOW = """
  pump_flow:
    version: 1
    dataset: pumps
    features:
      - {name: flow_mean_10m, field: flow, agg: mean, window: 10m}
      - {name: flow_latest, field: flow, agg: latest}
"""


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """The factory example in a folder of this test's own, to edit."""
    folder = tmp_path / "project"
    shutil.copytree(FACTORY, folder)
    return folder


def hang_up(supervisor: Supervisor, name: str) -> None:
    os.kill(supervisor.procs[name].popen.pid, signal.SIGHUP)


def pump_rows(database_url: str) -> list[dict[str, float]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return [
                row.features
                for row in conn.execute(
                    sa.select(offline_rows.c.features).where(
                        offline_rows.c.feature_set == "pump_flow"
                    )
                )
            ]
    finally:
        engine.dispose()


def test_sighup_picks_up_a_new_dataset_and_feature_set(
    supervisor: Supervisor,
    project_dir: Path,
    ingest_url: str,
    features: ProcessSpec,
    database_url: str,
) -> None:
    ingest = next(  # this test's ingest: other tests' may run on the same supervisor
        name
        for name, running in supervisor.procs.items()
        if running.spec.ready_url == f"{ingest_url}/readyz"
    )
    record = {"entity_id": f"p-{time.time_ns()}", "ts": "2026-05-01T00:00:00Z", "flow": 4.5}
    url = f"{ingest_url}/v1/datasets/pumps/records"
    assert httpx.post(url, json={"records": [record]}, timeout=10).status_code == 404

    spec = project_dir / "millrace.yaml"
    text = spec.read_text()
    text = text.replace("datasets:\n", "datasets:" + PUMPS, 1)
    text = text.replace("feature_sets:\n", "feature_sets:" + PUMP_FLOW, 1)
    spec.write_text(text)
    hang_up(supervisor, ingest)
    hang_up(supervisor, features.name)

    def accepted() -> bool:
        return httpx.post(url, json={"records": [record]}, timeout=10).status_code == 202

    wait_until(accepted, timeout=60, what="ingest to accept the new dataset", interval=0.5)
    later = record | {"ts": "2026-05-01T00:05:00Z", "flow": 5.5}
    assert httpx.post(url, json={"records": [later]}, timeout=10).status_code == 202
    wait_until(
        lambda: len(pump_rows(database_url)) >= 2,
        timeout=120,
        what="the features worker to compute the new feature set",
        interval=0.5,
    )
    rows = sorted(pump_rows(database_url), key=lambda r: r["flow_mean_10m"])
    assert rows[-1] == {"flow_mean_10m": 5.0, "flow_latest": 5.5}
    log = supervisor.procs[features.name].log_path.read_text()
    assert "project_reloaded" in log and "feature_sets_added" in log

    # a spec that does not load: refused, and the running project kept
    spec.write_text(text.replace("agg: latest", "agg: latest, window: 1d"))
    hang_up(supervisor, ingest)
    wait_until(
        lambda: "project_reload_refused" in supervisor.procs[ingest].log_path.read_text(),
        timeout=60,
        what="ingest to refuse the broken spec",
        interval=0.5,
    )
    again = record | {"ts": "2026-05-01T00:07:00Z"}
    assert httpx.post(url, json={"records": [again]}, timeout=10).status_code == 202
    assert supervisor.procs[ingest].popen.poll() is None
