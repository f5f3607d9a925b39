"""The admin routes refuse what they cannot do with a 4xx that says why, never a 500 or a
200 that did nothing: a model name or alias the registry's rules would refuse (a control
character, a space, a trailing newline) is a 422 naming the field before the registry is
asked; a model this process neither serves nor has loaded is a 404 on reload; and the
model that was serving goes on answering."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from millrace_serving.adapters.registry import MemoryRegistry

from tests.support.models import instance
from tests.support.serving import MODEL, app_of, promote, serving_runtime

ADMIN = "/v1/admin/models"


@pytest.fixture
async def client(tmp_path: Path) -> TestClient:
    runtime = serving_runtime(tmp_path)
    await promote(runtime, 1)
    return TestClient(app_of(runtime), raise_server_exceptions=False)


def refused(answer: object, status: int) -> tuple[str, str]:
    assert answer.status_code == status, answer.text  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    return body.get("field"), body["message"]


@pytest.mark.parametrize("name", ["m%0Ax", "m%00", "m%0A", "a%20b", "-leading", "x" * 121])
@pytest.mark.parametrize("action", ["load", "unload", "reload"])
def test_a_model_name_the_registry_would_refuse_is_a_422_naming_it(
    client: TestClient, name: str, action: str
) -> None:
    body = None if action == "reload" else {"version": 1}
    field, message = refused(client.post(f"{ADMIN}/{name}/{action}", json=body), 422)
    assert field == "name"
    assert message.startswith("model name ") and "must match" in message


@pytest.mark.parametrize("alias", ["Staging", "a b", "a\nb", "staging\n", "", "x" * 64])
def test_an_alias_the_registry_would_refuse_is_a_422_naming_it(
    client: TestClient, alias: str
) -> None:
    for action in ("load", "unload"):
        answer = client.post(f"{ADMIN}/{MODEL}/{action}", json={"alias": alias})
        field, message = refused(answer, 422)
        assert field == "alias" and message.startswith(f"alias {alias!r} must match")


def test_reloading_a_model_this_process_does_not_serve_is_a_404(client: TestClient) -> None:
    field, message = refused(client.post(f"{ADMIN}/nope/reload"), 404)
    assert (field, message) == ("name", "model 'nope' is not served by this process")
    served = client.post(f"{ADMIN}/{MODEL}/reload")
    assert served.status_code == 200 and served.json()["aliases"] == {"production": "unchanged"}


async def test_reloading_a_model_the_registry_has_no_alias_of_is_a_404(tmp_path: Path) -> None:
    runtime = serving_runtime(tmp_path, models="")  # every model the registry lists
    await promote(runtime, 1)
    client = TestClient(app_of(runtime), raise_server_exceptions=False)
    _, message = refused(client.post(f"{ADMIN}/nope/reload"), 404)
    assert message == "the registry has no alias (production) of model 'nope'"
    assert client.post(f"{ADMIN}/{MODEL}/reload").status_code == 200


async def test_reloading_a_model_with_only_a_pinned_version_loaded_is_no_404(
    tmp_path: Path,
) -> None:
    runtime = serving_runtime(tmp_path)
    assert isinstance(runtime.registry, MemoryRegistry)
    client = TestClient(app_of(runtime), raise_server_exceptions=False)
    assert client.post(f"{ADMIN}/{MODEL}/load", json={"version": 3}).status_code == 200
    answer = client.post(f"{ADMIN}/{MODEL}/reload")  # the registry has no production alias
    assert answer.status_code == 200 and answer.json()["aliases"] == {"production": "absent"}


def test_the_serving_model_answers_after_every_refusal(client: TestClient) -> None:
    for path, body in (
        (f"{ADMIN}/m%0A/reload", None),
        (f"{ADMIN}/{MODEL}/load", {"alias": "Bad Alias"}),
        (f"{ADMIN}/nope/reload", None),
    ):
        assert client.post(path, json=body).status_code in (404, 422)
    answer = client.post(f"/v1/models/{MODEL}/predict", json={"instances": [instance()]})
    assert answer.status_code == 200 and answer.json()["version"] == 1
