"""The scaffold's Retry-After for an Unavailable that names one, and its body limit."""

from __future__ import annotations

import pickle
from typing import Annotated, Any

from fastapi import Body, FastAPI
from fastapi.testclient import TestClient
from millrace_common.errors import Unavailable
from millrace_common.http import BodyLimit, install_error_handlers


def app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=100)

    @app.post("/echo")
    async def echo(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        if body.get("away"):
            raise Unavailable("the broker is away", retry_after=body.get("after"))
        return body

    return app


def test_unavailable_answers_retry_after_only_when_it_names_one() -> None:
    client = TestClient(app())
    named = client.post("/echo", json={"away": True, "after": 3})
    assert named.status_code == 503 and named.headers["retry-after"] == "3"
    assert named.json() == {"error": "unavailable", "message": "the broker is away"}
    assert "retry-after" not in client.post("/echo", json={"away": True}).headers
    assert pickle.loads(pickle.dumps(Unavailable("x", retry_after=3))).message == "x"


def test_a_body_over_the_limit_is_a_413_in_the_one_body() -> None:
    client = TestClient(app())
    assert client.post("/echo", json={"a": 1}).status_code == 200
    declared = client.post("/echo", json={"a": "x" * 200})
    assert declared.status_code == 413 and declared.json()["error"] == "too_large"
    chunked = client.post("/echo", content=iter([b"{", b" " * 150, b"}"]))
    assert chunked.status_code == 413 and "100 bytes" in chunked.json()["message"]
