"""The whole platform as processes, for the end-to-end tests: what the fixture hands a
test, and the project it runs."""

from __future__ import annotations

import contextlib
import random
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from millrace_cli.platform import DEFAULT_PORTS, PlatformConfig, start_platform
from millrace_cli.processes import Supervisor, ephemeral_ports, free_port, port_open
from moto.server import ThreadedMotoServer

from tests.support.databases import create_database, drop_database
from tests.support.paths import FACTORY
from tests.support.s3 import start_s3

RETRAIN_EVERY = 2000


@dataclass
class Platform:
    config: PlatformConfig
    supervisor: Supervisor
    s3: ThreadedMotoServer

    def url(self, service: str) -> str:
        return self.config.url(service)


def factory_project(tmp: Path) -> Path:
    """The factory example in a git repository of its own, retraining every RETRAIN_EVERY
    labelled rows (and no sooner limit: the tests wait for successive versions)."""
    spec = yaml.safe_load((FACTORY / "millrace.yaml").read_text())
    spec["models"]["machine-failure"]["retrain"] = {"every_n_labelled_rows": RETRAIN_EVERY}
    return project_repository(tmp, spec)


def project_repository(folder: Path, spec: dict[str, Any]) -> Path:
    """``spec`` as the ``millrace.yaml`` of a git repository of its own (lineage records
    the project's commit)."""
    (folder / "millrace.yaml").write_text(yaml.safe_dump(spec))
    git = ["git", "-C", str(folder), "-c", "user.name=e2e", "-c", "user.email=e2e@millrace"]
    for args in (["init", "-q"], ["add", "millrace.yaml"], ["commit", "-qm", "project"]):
        subprocess.run([*git, *args], check=True)
    return folder


@contextlib.contextmanager
def running_platform(
    workdir: Path, project: Path, *, env: dict[str, str] | None = None
) -> Iterator[Platform]:
    """Tansu, a database of its own, S3 (moto's server) and the central services on free
    ports, for ``project``; everything stopped and dropped at the end."""
    s3, s3_endpoint = start_s3()
    database = create_database()
    ports = {
        name: free_port()
        for name in ("broker", "ingest", "registry", "serving", "features", "trainer", "edge-agent")
    }
    config = PlatformConfig(
        database_url=database,
        object_store=f"s3://e2e-{secrets.token_hex(3)}?endpoint={s3_endpoint}&region=us-east-1",
        project=project,
        workdir=workdir,
        ports=ports,
        env=env or {},
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


def free_offset() -> int:
    """An offset at which every port of ``millrace dev``/``up`` is free, below the kernel's
    range for outgoing connections (there any client can take a port between the check and
    the bind: features once exited with uvicorn's "address already in use" that way)."""
    highest = ephemeral_ports().start - max(DEFAULT_PORTS.values())
    for _ in range(50):
        offset = random.randrange(1_000, highest, 100)
        if not any(port_open(port + offset) for port in DEFAULT_PORTS.values()):
            return offset
    raise RuntimeError("no free port range for the platform")
