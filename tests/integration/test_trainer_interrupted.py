"""The trainer killed (kill -9) in the middle of a run, then started again, as processes:
the killed run is failed with the reason instead of staying ``running``, and the request,
redelivered, is trained once; /readyz names the registry while it is away."""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from millrace_cli.processes import ProcessSpec, Supervisor, free_port, script
from millrace_common.contracts import SnapshotRef
from millrace_common.objectstore import ObjectStore

from tests.support.kafka import send_train_request
from tests.support.paths import FACTORY
from tests.support.training import MODEL, train_request, versions_when
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]
TRAIN_PY = '''
import time
from pathlib import Path

from sklearn.ensemble import RandomForestClassifier


def slow_forest(**params):
    """A forest that takes its time while the file ``slow`` is beside this one."""
    while Path(__file__).with_name("slow").exists():
        time.sleep(0.1)
    return RandomForestClassifier(**params)
'''


@pytest.fixture
def broker(fresh_broker: str) -> str:
    """A broker of this test's own: the session's carries other tests' train requests,
    which this trainer's new group would read too (and record runs for)."""
    return fresh_broker


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """The factory example whose model is built slowly while the test says so."""
    shutil.copy(FACTORY / "millrace.yaml", tmp_path / "millrace.yaml")
    project = yaml.safe_load((tmp_path / "millrace.yaml").read_text())
    project["models"][MODEL]["estimator"] = "train.slow_forest"
    (tmp_path / "millrace.yaml").write_text(yaml.safe_dump(project))
    (tmp_path / "train.py").write_text(TRAIN_PY)
    (tmp_path / "slow").touch()
    return tmp_path


@pytest.fixture
def trainer_spec(
    broker: str,
    object_store_url: str,
    project_dir: Path,
    registry_url: str,
) -> ProcessSpec:
    port = free_port()
    return ProcessSpec(
        name=f"trainer-{port}",
        argv=[script("millrace-trainer")],
        env={
            "MILLRACE_BROKER": broker,
            "MILLRACE_OBJECT_STORE": object_store_url,
            "MILLRACE_PROJECT": str(project_dir),
            "MILLRACE_TRAINER_PORT": str(port),
            "MILLRACE_TRAINER_REGISTRY_URL": registry_url,
            "MILLRACE_TRAINER_GROUP_ID": f"trainer-{secrets.token_hex(3)}",
            "MILLRACE_TRAINER_INSTANCE": f"trainer-it-{port}",
            # the S3 server's keys, set once it started (maybe after the supervisor was made)
            **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
        },
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )


@pytest.fixture
def trainer_process(supervisor: Supervisor, trainer_spec: ProcessSpec) -> Iterator[ProcessSpec]:
    supervisor.start(trainer_spec, timeout=120)
    yield trainer_spec
    supervisor.stop(trainer_spec.name)


def runs(registry: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{registry}/v1/models/{MODEL}/runs", timeout=10)
    return response.json() if response.status_code == 200 else []  # type: ignore[no-any-return]


async def test_a_run_the_trainer_was_killed_in_is_failed_and_the_request_trained_once(
    trainer_process: ProcessSpec,
    supervisor: Supervisor,
    broker: str,
    registry_url: str,
    snapshot: tuple[ObjectStore, SnapshotRef],
    project_dir: Path,
) -> None:
    request = train_request(snapshot[1], f"killed-{secrets.token_hex(4)}")
    await send_train_request(broker, request)
    wait_until(
        lambda: any(r["status"] == "running" for r in runs(registry_url)),
        timeout=120,
        what="the run to start",
    )
    supervisor.kill(trainer_process.name)  # kill -9 while the model is being built
    (killed,) = runs(registry_url)
    assert killed["status"] == "running"

    (project_dir / "slow").unlink()
    began = time.monotonic()
    supervisor.start(trainer_process, timeout=120)
    versions = await versions_when(registry_url, 1, timeout=180)
    after = {r["run_id"]: r for r in runs(registry_url)}
    assert after[killed["run_id"]]["status"] == "failed"
    assert after[killed["run_id"]]["failure_reason"] == (
        "interrupted: the trainer stopped during the run"
    )
    assert [v["request_id"] for v in versions] == [request.request_id]  # trained once
    retried = [r for r in after.values() if r["run_id"] != killed["run_id"]]
    assert [r["request_id"] for r in retried] == [request.request_id]
    assert retried[0]["status"] in ("succeeded", "rejected")
    print(f"restart to a registered version: {time.monotonic() - began:.1f} s")
