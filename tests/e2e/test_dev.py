"""``millrace dev``, the README's first command, as a user runs it: the embedded platform
(Tansu in memory, SQLite, a local object store, six services, the factory simulator)
puts a model in production, answers the predictions the console suggests, and stops
every process it started on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from millrace_cli.platform import DEFAULT_PORTS
from millrace_cli.processes import port_open, wait_until

from tests.support.platform import free_offset

ROOT = Path(__file__).resolve().parents[2]
MILLRACE = Path(sys.executable).parent / "millrace"
ROW = {
    "temperature_mean_10m": 80,
    "temperature_max_10m": 84,
    "vibration_mean_10m": 0.8,
    "vibration_std_10m": 0.1,
    "pressure_mean_10m": 3.0,
    "speed_last": 1300,
    "readings_10m": 20,
}


class Dev:
    def __init__(self, workdir: Path) -> None:
        self.offset = free_offset()
        self.output = workdir / "console.txt"
        self.logs = workdir / "dev" / "logs"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MILLRACE_")}
        with self.output.open("wb") as console:
            self.process = subprocess.Popen(
                [str(MILLRACE), "dev", "--workdir", str(workdir / "dev"), "--interval", "0.2"]
                + ["--batch", "40", "--port-offset", str(self.offset)],
                cwd=ROOT,
                env=env | {"COLUMNS": "300"},
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, as a terminal's job is
            )

    def console(self) -> str:
        return self.output.read_text(errors="replace")

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{DEFAULT_PORTS[service] + self.offset}"

    def ctrl_c(self) -> None:
        """What the terminal does on Ctrl-C: SIGINT to the whole foreground group."""
        os.killpg(self.process.pid, signal.SIGINT)

    def group_alive(self) -> list[str]:
        listing = subprocess.run(
            ["ps", "-o", "pid=,args=", "-g", str(self.process.pid)],
            capture_output=True,
            text=True,
            check=False,
        )
        return [line for line in listing.stdout.splitlines() if line.strip()]


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    dev = Dev(tmp_path)
    try:
        yield dev
    finally:
        if dev.process.poll() is None or dev.group_alive():
            os.killpg(dev.process.pid, signal.SIGKILL)
            dev.process.wait(timeout=30)


def test_millrace_dev_puts_a_model_in_production_and_stops_cleanly(dev: Dev) -> None:
    wait_until(
        lambda: "is in production" in dev.console() or dev.process.poll() is not None,
        timeout=420,
        what="millrace dev to announce a production model",
        interval=1,
    )
    assert dev.process.poll() is None, dev.console()
    console = dev.console()
    assert "Ctrl-C stops everything." in console
    version = int(re.search(r"machine-failure v(\d+) is in production", console).group(1))  # type: ignore[union-attr]
    # the command the console printed, as printed
    suggested = re.search(
        r"curl -s -X POST (\S+/predict) -H 'Authorization: (Bearer \S+)' .* -d '(\{.*\})'",
        console,
    )
    assert suggested is not None, console
    assert suggested.group(1) == f"{dev.url('serving')}/v1/models/machine-failure/predict"
    # authentication is on (no MILLRACE_AUTH here): the line carries the key dev made
    key = {"Authorization": suggested.group(2)}
    assert httpx.post(suggested.group(1), content=suggested.group(3)).status_code == 401
    answer = httpx.post(suggested.group(1), content=suggested.group(3), headers=key, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "machine-failure"
    assert answer.json()["version"] >= version
    assert answer.json()["predictions"][0]["label"] in (0, 1)
    # the simulator's rule is learnable: a production version is a model worth serving
    registry = f"{dev.url('registry')}/v1/models/machine-failure/versions/{version}"
    metrics = httpx.get(registry, headers=key, timeout=10).json()["metrics"]
    assert metrics["roc_auc"] > 0.8, metrics

    # the demo site's edge agent serves the same model once it has read its manifest
    edge = f"{dev.url('edge-agent')}/v1/models/machine-failure/predict"

    def edge_answers() -> bool:
        try:
            answer = httpx.post(edge, json={"instances": [ROW]}, headers=key, timeout=5)
            return answer.status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(edge_answers, timeout=120, what="the dev site's edge agent to serve", interval=1)

    dev.ctrl_c()
    assert dev.process.wait(timeout=90) == 0, dev.console()[-2000:]
    wait_until(lambda: not dev.group_alive(), timeout=60, what="every dev process to exit")
    assert dev.console().rstrip().endswith("stopped"), dev.console()[-2000:]
    # every service authenticated with its own key and the user's; none was ever logged
    logs = {path.name: path.read_text(errors="replace") for path in dev.logs.glob("*.log")}
    assert {"registry.log", "serving.log", "trainer.log", "edge-agent.log"} <= set(logs)
    leaked = [name for name, text in logs.items() if re.search(r"mr_[0-9a-f]{12}_", text)]
    assert leaked == [], f"keys in the logs of {leaked}"
    assert not any(port_open(port + dev.offset) for port in DEFAULT_PORTS.values())
