"""The whole platform as processes: Tansu, Postgres, S3 (moto's server), six services."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from millrace_cli.platform import PlatformConfig, start_platform
from millrace_cli.processes import Supervisor, free_port
from moto.server import ThreadedMotoServer

from tests.conftest import create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]
RETRAIN_EVERY = 2000


@dataclass
class Platform:
    config: PlatformConfig
    supervisor: Supervisor
    s3: ThreadedMotoServer

    def url(self, service: str) -> str:
        return self.config.url(service)


def _project(tmp: Path) -> Path:
    """The factory example, retraining every RETRAIN_EVERY labelled rows."""
    spec = yaml.safe_load((ROOT / "examples" / "factory" / "millrace.yaml").read_text())
    spec["models"]["machine-failure"]["retrain"]["every_n_labelled_rows"] = RETRAIN_EVERY
    (tmp / "millrace.yaml").write_text(yaml.safe_dump(spec))
    git = ["git", "-C", str(tmp), "-c", "user.name=e2e", "-c", "user.email=e2e@millrace"]
    for args in (["init", "-q"], ["add", "millrace.yaml"], ["commit", "-qm", "factory"]):
        subprocess.run([*git, *args], check=True)
    return tmp


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    workdir = tmp_path_factory.mktemp("platform")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "millrace-test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "millrace-test-secret")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    s3_port = free_port()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    s3.start()
    database = create_database()
    ports = {
        name: free_port()
        for name in ("broker", "ingest", "registry", "serving", "features", "trainer", "edge-agent")
    }
    config = PlatformConfig(
        database_url=database,
        object_store=f"s3://e2e-{secrets.token_hex(3)}?endpoint=http://127.0.0.1:{s3_port}"
        "&region=us-east-1",
        project=_project(tmp_path_factory.mktemp("project")),
        workdir=workdir,
        ports=ports,
    )
    supervisor = Supervisor(workdir / "logs")
    try:
        start_platform(supervisor, config)
        yield Platform(config, supervisor, s3)
    finally:
        supervisor.stop_all()
        with contextlib.suppress(Exception):  # a test may have stopped it already
            s3.stop()
        drop_database(database)
