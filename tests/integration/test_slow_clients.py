"""Clients that send less body than they declare, or drip it, hold their own connection
for ``request_body_timeout`` and then get a 408; everyone else is served meanwhile (the
scaffold's ``BodyLimit``, on every service: here the registry under uvicorn)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from millrace_registry.config import Settings as RegistrySettings

from tests.support.registry import running_registry

pytestmark = pytest.mark.integration
SLOW = 200
TIMEOUT = 2.0


@pytest.fixture
def registry(registry_settings: RegistrySettings) -> Iterator[str]:
    settings = registry_settings.model_copy(update={"request_body_timeout": TIMEOUT})
    with running_registry(settings) as url:
        yield url


def stalled(port: int) -> socket.socket:
    """Headers and a tenth of the body the Content-Length promises, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    sock.sendall(
        b"POST /v1/models/m/versions HTTP/1.1\r\nHost: registry\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        + b'{"request_id": "'
        + b"x" * 83
    )
    return sock


def answer_of(sock: socket.socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_stalled_bodies_get_408_and_do_not_stop_others_being_served(registry: str) -> None:
    port = int(registry.rsplit(":", 1)[1])
    started = time.monotonic()
    slow = [stalled(port) for _ in range(SLOW)]
    try:
        # while two hundred connections wait for bodies that never come
        for _ in range(20):
            assert httpx.get(f"{registry}/v1/models", timeout=30).status_code == 200
        answers = [answer_of(sock) for sock in slow]
    finally:
        for sock in slow:
            sock.close()
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}
    # no earlier than the timeout (the bound above it is generous: a busy machine)
    assert time.monotonic() - started >= TIMEOUT
    body = httpx.post(
        f"{registry}/v1/models/m/versions",
        content=b"{",
        timeout=30,
        headers={"content-type": "application/json"},
    )
    assert body.status_code == 422  # a whole (if malformed) body is read as ever
