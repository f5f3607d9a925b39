"""What the edge agent's integration tests share: an agent that forwards to the centre, a
link to the centre the test can cut, the agent's status, and reading back what reached
``raw`` and ``predictions``."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from millrace_cli.processes import ProcessSpec, free_port, script
from millrace_common.contracts import PREDICTIONS, RAW

from tests.support.kafka import Record, distinct, read_topic, value_of, values
from tests.support.models import instance


def forwarding_agent(
    *,
    name: str,
    site: str,
    tmp_path: Path,
    project_dir: Path,
    forward_url: str,
    ready: str = "/healthz",
    env: dict[str, str] | None = None,
) -> tuple[ProcessSpec, str]:
    """An edge agent serving the models under ``tmp_path/objects`` with no broker, which
    forwards to ``forward_url`` (retries capped at 0.5 s); its spec and base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    spec = ProcessSpec(
        name=name,
        argv=[script("millrace-edge-agent"), "run", "--site", site],
        env={
            "MILLRACE_EDGE_AGENT_PORT": str(port),
            "MILLRACE_EDGE_AGENT_CACHE_DIR": str(tmp_path / "site"),
            "MILLRACE_OBJECT_STORE": f"file://{tmp_path / 'objects'}",
            "MILLRACE_PROJECT": str(project_dir),
            "MILLRACE_BROKER": "",
            "MILLRACE_EDGE_AGENT_FORWARD_URL": forward_url,
            "MILLRACE_EDGE_AGENT_FORWARD_RETRY_CAP": "0.5",
            **(env or {}),
        },
        ready_url=f"{base}{ready}",
    )
    return spec, base


def agent_status(base: str) -> dict[str, Any]:
    """The agent's ``/v1/status`` document."""
    return httpx.get(f"{base}/v1/status", timeout=5).json()  # type: ignore[no-any-return]


def served_version(base: str, model: str) -> int | None:
    """The version that answers a prediction of ``model``; None while none does."""
    instances = [instance()]
    response = httpx.post(f"{base}/v1/models/{model}/predict", json={"instances": instances})
    return response.json()["version"] if response.status_code == 200 else None  # type: ignore[no-any-return]


async def read_raw(broker: str, *, entities: set[str], until: int) -> list[dict[str, Any]]:
    """Every raw record of ``entities`` in partition order, once ``until`` distinct event
    ids are seen (duplicates included, so the test can dedup like the centre does)."""
    records = await read_topic(
        broker,
        RAW,
        keep=lambda r: value_of(r).get("entity_id") in entities,
        until=distinct("event_id", until),
        what=f"{until} distinct records of {len(entities)} entities",
    )
    return values(records)


def first_seen_per_entity(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    seen: set[str] = set()
    order: dict[str, list[str]] = {}
    for record in records:
        if record["event_id"] not in seen:
            seen.add(record["event_id"])
            order.setdefault(record["entity_id"], []).append(record["event_id"])
    return order


async def read_predictions(
    broker: str, *, match: Callable[[dict[str, Any]], bool], until: int
) -> list[Record]:
    """Every ``predictions`` message whose value ``match``es, once ``until`` distinct
    request ids are seen (repeats included, so the test can dedup like the centre)."""
    return await read_topic(
        broker,
        PREDICTIONS,
        keep=lambda r: match(value_of(r)),
        until=distinct("request_id", until),
        what=f"{until} distinct prediction logs",
    )


class LinkProxy:
    """A TCP relay to ``target``; ``cut()`` resets every connection and refuses new ones
    until ``restore()``, as a dead uplink does."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.up = True
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self.up = False
            for conn in self._conns:
                _close(conn)
            self._conns.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        _close(self._server)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self.up:
                _close(client)
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(src, dst), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    _close(src)
    _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
