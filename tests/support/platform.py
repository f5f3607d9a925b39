"""The whole platform as processes, for the end-to-end tests: what the fixture hands a
test, and the project it runs."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml
from millrace_cli.platform import PlatformConfig
from millrace_cli.processes import Supervisor
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
