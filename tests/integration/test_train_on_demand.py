"""Training on demand: ``millrace train MODEL`` makes the features service (a process) cut a
fresh snapshot now; its train request reaches the trainer through ``train-requests`` and
``--wait`` follows the run in the registry until a version is out."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from millrace_cli.main import app
from millrace_cli.processes import ProcessSpec
from millrace_common.contracts import TRAIN_REQUESTS, TrainRequest
from millrace_common.objectstore import get_verified, key_of, open_store
from millrace_trainer.runtime import Runtime
from typer.testing import CliRunner

from tests.support.features import load_factory
from tests.support.kafka import Record, read_topic
from tests.support.training import MODEL

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture
def broker(fresh_broker: str) -> str:
    """A broker of this test's own: the snapshots hold only what this test produced."""
    return fresh_broker


def _url(spec: ProcessSpec) -> str:
    assert spec.ready_url is not None
    return spec.ready_url.removesuffix("/readyz")


def _ask(spec: ProcessSpec, model: str = MODEL, **body: object) -> httpx.Response:
    return httpx.post(f"{_url(spec)}/v1/models/{model}/train-requests", json=body, timeout=60)


def _load(broker_url: str, database_url: str, *, count: int, total: int) -> None:
    load_factory(broker_url, database_url, count=count, total=total, seed=6)


async def _requests_on_topic(broker_url: str, want: set[str]) -> dict[str, TrainRequest]:
    def requests(records: list[Record]) -> dict[str, TrainRequest]:
        parsed = (TrainRequest.model_validate_json(r.value or b"") for r in records)
        return {request.request_id: request for request in parsed}

    found = await read_topic(
        broker_url,
        TRAIN_REQUESTS,
        until=lambda records: want <= set(requests(records)),
        what=f"train requests {sorted(want)}",
    )
    return requests(found)


async def test_on_demand_requests_name_a_fresh_snapshot_each_time(
    features: ProcessSpec, broker: str, database_url: str, object_store_url: str
) -> None:
    empty = _ask(features, reason="too early")
    assert empty.status_code == 409 and "no labelled rows" in empty.json()["message"]
    unknown = _ask(features, model="no-such-model")
    assert unknown.status_code == 404 and "no-such-model" in unknown.json()["message"]
    bad = _ask(features, reason="", colour="red")
    assert bad.status_code == 422 and bad.json()["field"] in ("reason", "colour")

    _load(broker, database_url, count=400, total=400)
    first = _ask(features, reason="new sensor firmware", requested_by="ana")
    assert first.status_code == 202, first.text
    _load(broker, database_url, count=600, total=1000)
    second = _ask(features)
    assert second.status_code == 202, second.text
    one, two = first.json(), second.json()
    assert one["snapshot"]["uri"] != two["snapshot"]["uri"]
    assert two["snapshot"]["rows"] > one["snapshot"]["rows"] >= 1

    on_topic = await _requests_on_topic(broker, {one["request_id"], two["request_id"]})
    sent = on_topic[one["request_id"]]
    assert (sent.model, sent.reason, sent.requested_by) == (MODEL, "new sensor firmware", "ana")
    assert sent.snapshot.sha256 == one["snapshot"]["sha256"]
    data = get_verified(
        open_store(object_store_url), key_of(sent.snapshot.uri), sent.snapshot.sha256
    )  # the named snapshot exists, intact
    assert data.startswith(b"PAR1")


async def test_millrace_train_wait_follows_the_run_to_a_version(
    features: ProcessSpec, trainer: Runtime, registry_url: str, broker: str, database_url: str
) -> None:
    _load(broker, database_url, count=600, total=600)

    def train(*args: str) -> tuple[int, str]:
        result = runner.invoke(
            app,
            ["train", MODEL, "--features-url", _url(features), "--registry", registry_url, *args],
        )
        return result.exit_code, result.output

    # in a thread: the CLI runs its own loop, and the in-process trainer must keep running
    code, output = await asyncio.to_thread(
        train, "--wait", "--timeout", "240", "--json", "--reason", "on demand test"
    )
    assert code == 0, output
    lines = output.splitlines()
    doc, _ = json.JSONDecoder().raw_decode("\n".join(lines[lines.index("{") :]))
    assert doc["run"]["status"] == "succeeded" and doc["version"]["version"] == 1
    lineage = doc["version"]["lineage"]
    assert lineage["train_request"]["request_id"] == doc["request_id"]
    assert lineage["train_request"]["reason"] == "on demand test"
    assert lineage["snapshot"]["sha256"] == doc["snapshot"]["sha256"]
    assert doc["version"]["aliases"] == ["champion", "production"]

    code, output = await asyncio.to_thread(train)  # no --wait: queued, one line
    assert code == 0 and "queued" in output and "snapshot" in output

    result = runner.invoke(app, ["train", "no-such-model", "--features-url", _url(features)])
    assert result.exit_code == 1 and "HTTP 404: no model 'no-such-model'" in result.output
