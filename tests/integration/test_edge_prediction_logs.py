"""Prediction logs from an edge site reach ``predictions`` through an outage: the agent,
ingest and the broker are real processes, and the link between agent and ingest is a
proxy the test cuts and restores. Every prediction answered while the centre was away
(and across a ``kill -9`` of the agent) arrives once it is back, once per request id,
naming its site."""

from __future__ import annotations

import secrets
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from millrace_cli.processes import Supervisor, wait_until
from millrace_common.contracts import PredictionLogged
from millrace_common.objectstore import open_store

from tests.support.edge import LinkProxy, agent_status, forwarding_agent, read_predictions
from tests.support.models import deploy_to_site, instance

pytestmark = pytest.mark.integration
MODEL = "machine-failure"


def deploy(objects: Path, site: str) -> None:
    deploy_to_site(open_store(f"file://{objects}"), site=site, name=MODEL)


def logs_state(base: str) -> dict[str, Any]:
    return agent_status(base)["prediction_logs"]  # type: ignore[no-any-return]


def predict(base: str, value: float) -> None:
    response = httpx.post(
        f"{base}/v1/models/{MODEL}/predict", json={"instances": [instance(value)]}, timeout=10
    )
    assert response.status_code == 200, response.text


async def test_predictions_made_offline_reach_the_centre_once_each_with_their_site(
    tmp_path: Path, project_dir: Path, link: LinkProxy, broker: str
) -> None:
    site = f"plant-pl-{secrets.token_hex(3)}"
    deploy(tmp_path / "objects", site)
    spec, base = forwarding_agent(
        name="edge-pl",
        site=site,
        tmp_path=tmp_path,
        project_dir=project_dir,
        forward_url=f"http://127.0.0.1:{link.port}",
        ready="/readyz",  # ready once the site's model is loaded
        env={"MILLRACE_EDGE_AGENT_FORWARD_BATCH": "4"},
    )
    supervisor = Supervisor(tmp_path / "logs")
    link.cut()
    try:
        supervisor.start(spec, timeout=60)
        for n in range(12):
            predict(base, n / 10)
        wait_until(
            lambda: (
                logs_state(base)["queue_depth"] == 12 and logs_state(base)["forward_failures"] > 0
            ),
            timeout=30,
            what="the logs on disk, the agent failing to reach the centre",
        )
        supervisor.kill("edge-pl")  # kill -9 in the middle of the outage

        supervisor.start(spec, timeout=60)
        assert logs_state(base)["queue_depth"] == 12  # what was on disk is still there
        for n in range(12, 15):
            predict(base, n / 10)
        link.restore()
        wait_until(
            lambda: logs_state(base)["queue_depth"] == 0 and logs_state(base)["buffered"] == 0,
            timeout=60,
            what="the prediction logs to drain once the link is back",
        )
        assert logs_state(base)["drops"] == {}
    finally:
        supervisor.stop_all()

    records = await read_predictions(broker, match=lambda v: v.get("site") == site, until=15)
    events = [PredictionLogged.model_validate_json(r.value) for r in records]
    by_id = {e.request_id: e for e in events}  # the centre's dedup
    assert len(by_id) == 15
    ids_per_input: dict[str, set[str]] = defaultdict(set)
    for event in events:
        ids_per_input[event.inputs_sha256].add(event.request_id)
    # fifteen different inputs, each logged under one request id (a resend keeps it)
    assert len(ids_per_input) == 15 and all(len(ids) == 1 for ids in ids_per_input.values())
    assert {(e.site, e.model, e.version) for e in events} == {(site, MODEL, 1)}
    assert {r.key for r in records} == {MODEL.encode()}
    for record, event in zip(records, events, strict=True):
        assert dict(record.headers)["ce_id"].decode() == event.request_id
