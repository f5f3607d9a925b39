"""The whole platform as processes, for the end-to-end tests: what the fixture hands a
test, and the project it runs."""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml
from millrace_cli.platform import DEFAULT_PORTS, PlatformConfig
from millrace_cli.processes import Supervisor, ephemeral_ports, port_open
from moto.server import ThreadedMotoServer

from tests.support.paths import FACTORY

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
    (tmp / "millrace.yaml").write_text(yaml.safe_dump(spec))
    git = ["git", "-C", str(tmp), "-c", "user.name=e2e", "-c", "user.email=e2e@millrace"]
    for args in (["init", "-q"], ["add", "millrace.yaml"], ["commit", "-qm", "factory"]):
        subprocess.run([*git, *args], check=True)
    return tmp


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
