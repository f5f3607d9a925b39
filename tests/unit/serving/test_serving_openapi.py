"""/openapi.json is the truth a client generates from: every route of serving documents
its request body and every status it answers, in the error body its path answers with;
the scoring routes included, though they read their requests themselves for speed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from millrace_common.http import DirectRoute

from tests.support.serving import app_of, serving_runtime

SCORING = {
    ("POST", "/v1/models/{name}/predict"): "PredictRequest",
    ("POST", "/v2/models/{name}/infer"): "InferenceRequest",
    ("POST", "/v2/models/{name}/versions/{version}/infer"): "InferenceRequest",
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    runtime = serving_runtime(Path(tmp_path_factory.mktemp("openapi")))
    answer = TestClient(app_of(runtime)).get("/openapi.json")
    assert answer.status_code == 200
    return answer.json()  # type: ignore[no-any-return]


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def test_every_ref_resolves_to_a_component(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    found = refs(spec)
    assert found, "the spec names its models"
    assert {r.removeprefix("#/components/schemas/") for r in found} <= set(schemas)


def test_the_scoring_routes_document_their_bodies_and_answers(spec: dict[str, Any]) -> None:
    for (method, path), model in SCORING.items():
        op = spec["paths"][path][method.lower()]
        body = op["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{model}"
        }
        answers = op["responses"]
        assert {"200", "404", "422", "504", "401", "403", "413"} <= set(answers), path
        ok = answers["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ok.endswith("/PredictResponse" if path.startswith("/v1") else "/InferenceResponse")
    binary = spec["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    assert "application/octet-stream" in binary  # Triton's binary tensor extension


def test_every_error_status_names_the_body_its_path_answers(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        for status, answer in op["responses"].items():
            if not status.startswith(("4", "5")) or path.endswith("ready") or path == "/readyz":
                continue
            schema = answer["content"]["application/json"]["schema"]["$ref"]
            if schema.endswith("/HTTPValidationError"):
                # FastAPI's own 422 for a route with parameters that declares none: it is
                # the scaffold's to replace (no serving route with a body lacks its own)
                assert "requestBody" not in op, (method, path)
                continue
            wanted = "/V2ErrorBody" if path.startswith("/v2") else "/ErrorBody"
            assert schema.endswith(wanted), (method, path, status, schema)


def test_every_route_answers_a_model_and_every_body_is_documented(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        if path == "/metrics":
            continue
        assert "application/json" in op["responses"]["200"].get("content", {}), (method, path)
        takes_body = method == "POST" and not path.endswith("/reload")
        assert ("requestBody" in op) == takes_body, (method, path)


def test_admin_routes_document_what_they_refuse(spec: dict[str, Any]) -> None:
    admin = "/v1/admin/models/{name}"
    assert {"404", "409", "422", "503", "401", "403"} <= set(
        spec["paths"][f"{admin}/load"]["post"]["responses"]
    )
    assert {"404", "422"} <= set(spec["paths"][f"{admin}/unload"]["post"]["responses"])
    assert "503" in spec["paths"][f"{admin}/reload"]["post"]["responses"]
    traffic = spec["paths"]["/v1/admin/traffic"]["get"]["responses"]["200"]
    schema = traffic["content"]["application/json"]["schema"]
    assert schema["additionalProperties"]["$ref"].endswith("/TrafficPolicyOut")


def test_the_scoring_routes_stay_direct_and_first(tmp_path: Path) -> None:
    """Speed: routes are matched in order, and FastAPI's parameter solving costs more
    than scoring a small model."""
    app = app_of(serving_runtime(tmp_path))
    first = [r for r in app.router.routes[: len(SCORING) + 1] if isinstance(r, APIRoute)]
    direct = {(m, r.path) for r in first if isinstance(r, DirectRoute) for m in r.methods}
    assert set(SCORING) <= direct
