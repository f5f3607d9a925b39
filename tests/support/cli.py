"""The CLI for tests: a stand-in service (canned JSON answers on a loopback port, and the
requests it received), and running ``millrace`` in-process as a user would."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from millrace_cli.main import app
from typer.testing import CliRunner


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

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def run_cli(*args: str) -> tuple[int, str]:
    """``millrace ARGS`` in-process: its exit code and output; a crash is raised as is."""
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def cli_json(*args: str) -> Any:
    """The JSON document ``millrace ARGS --json`` printed; the command must succeed."""
    code, output = run_cli(*args, "--json")
    assert code == 0, output
    return json_document(output)


def json_document(output: str) -> Any:
    """The first JSON document in ``output``: services running in-process log to the same
    captured stdout, so skip to the first line that opens one."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line[:1] in "[{")
    return json.JSONDecoder().raw_decode("\n".join(lines[start:]))[0]
