"""A stand-in service for the CLI's unit tests: canned JSON answers on a loopback port,
and the requests it received."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class Answer:
    status: int
    body: Any
    content_type: str = "application/json"


@dataclass
class FakeService:
    url: str
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    received: list[tuple[str, str, dict[str, list[str]], Any]] = field(default_factory=list)

    def answer(self, method: str, path: str, body: Any, *, status: int = 200) -> None:
        self.answers[(method, path)] = Answer(status, body)


def handler_for(service: FakeService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def handle_one(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            sent = json.loads(self.rfile.read(length)) if length else None
            service.received.append((self.command, url.path, parse_qs(url.query), sent))
            answer = service.answers.get((self.command, url.path))
            if answer is None:
                answer = Answer(404, {"error": "not_found", "message": f"no route {url.path}"})
            data = (
                answer.body.encode()
                if isinstance(answer.body, str)
                else json.dumps(answer.body).encode()
            )
            self.send_response(answer.status)
            self.send_header("content-type", answer.content_type)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = handle_one

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
            pass

    return Handler


@pytest.fixture
def service() -> Iterator[FakeService]:
    fake = FakeService(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
