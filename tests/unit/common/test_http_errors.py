"""A bug behind a route is a 500 with one line of JSON, never a stack trace; a scoring
failure nobody could recover from is counted among the predict requests."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from millrace_common.dataplane import DataPlane, Route
from millrace_common.http import install_error_handlers
from millrace_common.scoring import LoadedModel, ModelSlots, load_model
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError
from urllib3.exceptions import MaxRetryError

from tests.support.models import build_model


def test_an_unexpected_error_is_one_line_of_json() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail /etc/passwd")

    answer = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert answer.status_code == 500
    assert answer.json() == {
        "error": "internal",
        "message": "internal error; the service log has the details",
    }
    assert "Traceback" not in answer.text and "secret" not in answer.text


@pytest.mark.parametrize(
    ("error", "away"),
    [
        (OperationalError("SELECT 1", None, ConnectionRefusedError()), "the database"),
        (MaxRetryError(None, "/models/m.onnx", "refused"), "the object store"),  # type: ignore[arg-type]
    ],
)
def test_a_dependency_that_cannot_be_reached_is_a_503_to_retry(error: Exception, away: str) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/thing")
    async def thing() -> None:
        raise error

    answer = TestClient(app, raise_server_exceptions=False).get("/thing")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
    assert answer.json() == {
        "error": "unavailable",
        "message": f"{away} is unreachable; retry shortly",
    }


def test_a_body_that_is_not_even_text_is_invalid_like_malformed_json() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things")
    async def things(thing: dict[str, int]) -> dict[str, int]:
        return thing

    client = TestClient(app)
    for body in (b"\xff\xfe\x00 not utf-8", b"{not json"):
        answer = client.post("/things", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "invalid_input" and answer.json()["field"] == "body"


class Broken(LoadedModel):
    def run(self, matrix: np.ndarray) -> list[np.ndarray]:
        raise RuntimeError("onnxruntime fell over")


async def test_an_unrecoverable_scoring_failure_is_counted() -> None:
    artifact = build_model(seed=1)
    good = load_model(
        name="m-broken",
        version=1,
        data=artifact.data,
        sha256=artifact.sha256,
        schema=artifact.schema,
    )
    broken = Broken(
        name=good.name, version=1, sha256=good.sha256, schema=good.schema, session=good.session
    )
    slots = ModelSlots()
    slots.swap("m-broken", "production", broken)
    plane = DataPlane(slots=slots)
    labels = {"model": "m-broken", "version": "1", "status": "internal_error"}
    before = REGISTRY.get_sample_value("millrace_predict_requests_total", labels) or 0.0
    choice = plane.choose(Route(name="m-broken", alias=None, version=None, key=None, entity=None))
    with pytest.raises(RuntimeError):
        await plane.answer(choice, np.zeros((1, 7), dtype=np.float32), started=0.0)
    assert REGISTRY.get_sample_value("millrace_predict_requests_total", labels) == before + 1


def scaffolded_app() -> FastAPI:
    from millrace_common.http import errors
    from millrace_common.service import service_app

    class Idle:
        async def start(self) -> None: ...

        async def stop(self) -> None: ...

        async def ready(self) -> tuple[bool, str]:
            return True, "idle"

    app = service_app(Idle(), title="t")

    @app.post("/v1/things", responses=errors(422))
    async def make(thing: dict[str, int]) -> dict[str, int]:
        return thing

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, body: dict[str, int]) -> dict[str, int]:
        return body

    return app


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("get", "/v1/nothing-here", None, 404, "not_found"),
        ("delete", "/v1/things", None, 405, "method_not_allowed"),
        ("post", "/v1/things", b"{not json", 422, "invalid_input"),
        ("post", "/v1/things", b'{"a": "x"}', 422, "invalid_input"),
    ],
)
def test_every_error_outside_v2_has_the_one_shape(
    method: str, path: str, body: bytes | None, status: int, code: str
) -> None:
    client = TestClient(scaffolded_app())
    answer = client.request(
        method, path, content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == status
    assert answer.json()["error"] == code and answer.json()["message"]
    assert "detail" not in answer.json()


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "/v2/models/m/nothing", None, 404),
        ("get", "/v2/models/m/infer", None, 405),
        ("post", "/v2/models/m/infer", b"{not json", 422),
    ],
)
def test_every_error_under_v2_is_the_open_inference_protocols(
    method: str, path: str, body: bytes | None, status: int
) -> None:
    client = TestClient(scaffolded_app())
    answer = client.request(
        method, path, content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == status
    assert list(answer.json()) == ["error"] and answer.json()["error"]


def test_the_scaffold_documents_health_and_errors() -> None:
    spec = TestClient(scaffolded_app()).get("/openapi.json").json()
    assert {"/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    declared = spec["paths"]["/v1/things"]["post"]["responses"]["422"]
    assert declared["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_a_database_that_cannot_be_reached_is_a_503_to_retry() -> None:
    import sqlalchemy as sa

    app = FastAPI()
    install_error_handlers(app)
    engine = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")

    @app.get("/v1/rows")
    async def rows() -> None:
        with engine.connect():
            pass

    answer = TestClient(app, raise_server_exceptions=False).get("/v1/rows")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "2"
    assert answer.json()["error"] == "unavailable"
