"""``millrace init`` then ``millrace up --project DIR`` as a user runs them, for the
end-to-end tests of a team's own project: the platform's URLs, the key ``up`` printed,
its console, and Ctrl-C at the end (which must stop everything and exit 0)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from millrace_cli.platform import DEFAULT_PORTS
from millrace_cli.processes import wait_until

from tests.support.platform import free_offset

MILLRACE = Path(sys.executable).parent / "millrace"


@dataclass
class Up:
    project: Path
    workdir: Path
    offset: int
    console: Path
    process: subprocess.Popen[bytes]
    token: str = ""

    def said(self) -> str:
        return self.console.read_text(errors="replace")

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{DEFAULT_PORTS[service] + self.offset}"

    @property
    def env(self) -> dict[str, str]:
        """The environment of a user's shell: none of the test runner's MILLRACE_ settings,
        and the key ``up`` printed."""
        plain = {k: v for k, v in os.environ.items() if not k.startswith("MILLRACE_")}
        return plain | {"MILLRACE_TOKEN": self.token}

    def wait_for(self, line: str, *, timeout: float, what: str) -> None:
        wait_until(
            lambda: line in self.said() or self.process.poll() is not None,
            timeout=timeout,
            what=what,
            interval=1,
        )
        assert self.process.poll() is None, self.said()[-3000:]


@contextmanager
def millrace_up(tmp: Path) -> Iterator[Up]:
    """The churn project ``millrace init`` writes, run by ``millrace up`` in ``tmp``."""
    project = tmp / "churn"
    made = subprocess.run([str(MILLRACE), "init", str(project)], capture_output=True, text=True)
    assert made.returncode == 0 and "next: millrace up --project" in made.stdout, made.stderr
    offset, console = free_offset(), tmp / "console.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MILLRACE_")}
    with console.open("wb") as out:
        process = subprocess.Popen(
            [str(MILLRACE), "up", "--project", str(project), "--workdir", str(tmp / "up")]
            + ["--port-offset", str(offset)],
            env=env | {"COLUMNS": "300"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    up = Up(project, tmp / "up", offset, console, process)
    try:
        up.wait_for("Ctrl-C stops everything", timeout=300, what="millrace up to start")
        up.token = re.search(r"export MILLRACE_TOKEN=(\S+)", up.said()).group(1)  # type: ignore[union-attr]
        yield up
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        code = process.wait(timeout=120)
    assert code == 0 and up.said().rstrip().endswith("stopped"), up.said()[-2000:]
