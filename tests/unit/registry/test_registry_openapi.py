"""/openapi.json is the truth a client can generate from: every JSON route of the registry
names the document it answers, and each error status it declares is the one error body."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()  # type: ignore[no-any-return]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its ``$ref`` (and an array's items) looked up in the components."""
    if "items" in schema:
        return resolve(spec, schema["items"])
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return found


BINARY = {
    "/v1/sites/{site_id}/objects/{key}",
    "/v1/models/{name}/runs/{run_id}/artifacts/{path}",
    "/v1/models/{name}/versions/{version}/artifact",
}
"""Routes that answer bytes (a site's manifest and models, a run's files), not a JSON
document."""


def json_routes(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if method in METHODS and path != "/metrics" and path not in BINARY
    ]


def test_the_site_object_route_answers_bytes_or_not_modified(spec: dict[str, Any]) -> None:
    path = "/v1/sites/{site_id}/objects/{key}"
    answers = spec["paths"][path]["get"]["responses"]
    assert "application/octet-stream" in answers["200"]["content"]
    assert {"304", "401", "403", "404"} <= set(answers)


def test_every_json_route_names_the_document_it_answers(spec: dict[str, Any]) -> None:
    routes = json_routes(spec)
    assert len([r for r in routes if r[0].startswith("/v1/")]) == 35
    assert not [path for path, _, _ in routes if path.startswith("/ui")]  # HTML, not JSON
    for path, method, operation in routes:
        answers = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert answers, f"{method} {path} declares no success"
        for status, answer in answers.items():
            schema = answer["content"]["application/json"]["schema"]
            assert schema != {}, f"{method} {path} {status} says nothing of its body"
            assert resolve(spec, schema).get("properties"), f"{method} {path} {status}"


def test_every_declared_client_error_is_the_one_error_body(spec: dict[str, Any]) -> None:
    declared = 0
    for path, method, operation in json_routes(spec):
        for status, answer in operation["responses"].items():
            if status.startswith("4"):
                declared += 1
                schema = answer["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("/ErrorBody"), f"{method} {path} {status}"
    assert declared >= 60
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_the_routes_that_find_nothing_or_conflict_say_so(spec: dict[str, Any]) -> None:
    paths = spec["paths"]

    def statuses(path: str, method: str) -> set[str]:
        answers = paths[path][method]["responses"]
        assert {"401", "403"} <= set(answers)  # the guard's, on every guarded route
        return {s for s in answers if s.startswith("4")} - {"401", "403"}

    assert statuses("/v1/models/{name}", "get") == {"404", "422"}
    assert statuses("/v1/models/{name}/aliases/{alias}", "post") == {"404", "409", "422"}
    assert statuses("/v1/sites/{site_id}/deployments/{model}", "delete") == {"404", "409", "422"}
    assert statuses("/v1/models/{name}/runs/{run_id}", "put") == {"409", "422"}
    created = paths["/v1/models/{name}/versions"]["post"]["responses"]
    assert {"200", "201"} <= set(created)  # a re-send answers the version it registered
    listed = paths["/v1/models"]["get"]["responses"]["200"]
    assert "X-Total-Count" in listed["headers"]
