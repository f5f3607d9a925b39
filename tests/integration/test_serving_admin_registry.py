"""Serving's admin routes against a real registry (Postgres, the S3 protocol, the broker):
what the registry refuses (a version it could never hold) is a 422 naming the field and
giving the registry's reason, what it does not have (a version, an alias, a model) is a
404, and none of it is a 500 or a 503 blaming a registry that answered; the production
model goes on answering."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from millrace_common.db import make_engine
from millrace_common.objectstore import ObjectStore
from millrace_serving.adapters.registry import HttpRegistry
from millrace_serving.app import bootstrap, create_app
from millrace_serving.config import Settings

from tests.support.models import build_model, instance
from tests.support.registry import registration

pytestmark = pytest.mark.integration
MODEL = "machine-failure"
ADMIN = f"/v1/admin/models/{MODEL}"


@pytest.fixture
async def serving(
    registry_url: str, registry_store: ObjectStore, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """Serving every model the registry lists, once the registry's production v1 is in."""
    target = build_model(seed=1).upload(registry_store, name=MODEL, version=1)
    registered = httpx.post(
        f"{registry_url}/v1/models/{MODEL}/versions",
        json=registration("r1", 0.9, target=target),
        timeout=30,
    )
    assert registered.status_code == 201 and registered.json()["promoted"], registered.text
    runtime = bootstrap(
        Settings(models="", publish_predictions=False),
        store=registry_store,
        registry=HttpRegistry(registry_url, timeout=30),
        engine=make_engine(f"sqlite:///{tmp_path / 'serving.db'}"),
    )
    await runtime.alias_follower.sync_from_registry()
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
        yield client
    await runtime.registry.close()


def refused(answer: httpx.Response, status: int) -> tuple[str | None, str]:
    assert answer.status_code == status, answer.text
    return answer.json().get("field"), answer.json()["message"]


@pytest.mark.parametrize(
    ("version", "reason"),
    [(0, "greater than or equal to 1"), (2**63, "less than or equal to")],
)
async def test_a_version_the_registry_refuses_is_a_422_with_its_reason(
    serving: httpx.AsyncClient, version: int, reason: str
) -> None:
    field, message = refused(await serving.post(f"{ADMIN}/load", json={"version": version}), 422)
    assert field == "version"
    assert message.startswith(f"the registry refused version {version} of model '{MODEL}': ")
    assert reason in message


async def test_what_the_registry_does_not_have_is_a_404(serving: httpx.AsyncClient) -> None:
    field, message = refused(await serving.post(f"{ADMIN}/load", json={"version": 7}), 404)
    assert (field, message) == ("version", f"the registry has no version 7 of model '{MODEL}'")
    field, message = refused(await serving.post(f"{ADMIN}/load", json={"alias": "staging"}), 404)
    assert (field, message) == ("alias", f"the registry has no alias 'staging' of model '{MODEL}'")
    unknown = await serving.post("/v1/admin/models/nope/load", json={"version": 1})
    assert refused(unknown, 404)[1] == "the registry has no version 1 of model 'nope'"
    _, message = refused(await serving.post("/v1/admin/models/nope/reload"), 404)
    assert message == "the registry has no alias (production) of model 'nope'"


async def test_a_name_the_registry_could_never_hold_is_refused_before_asking(
    serving: httpx.AsyncClient,
) -> None:
    for name in ("m%0Ax", "m%0A", "a%3Fb"):
        field, _ = refused(await serving.post(f"/v1/admin/models/{name}/reload"), 422)
        assert field == "name"


async def test_production_answers_after_the_refusals(serving: httpx.AsyncClient) -> None:
    assert (await serving.post(f"{ADMIN}/load", json={"version": 0})).status_code == 422
    assert (await serving.post(f"{ADMIN}/reload")).json()["aliases"] == {"production": "unchanged"}
    answer = await serving.post(f"/v1/models/{MODEL}/predict", json={"instances": [instance()]})
    assert answer.status_code == 200 and answer.json()["version"] == 1
