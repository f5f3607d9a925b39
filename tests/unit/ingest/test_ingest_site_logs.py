"""A site's key speaks for its own site: ingest takes its prediction logs, and refuses,
naming the field, a log that claims another site."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from millrace_ingest.app import bootstrap, create_app
from millrace_ingest.config import Settings

from tests.support.fakes import FakeProducer
from tests.support.identity import key_file
from tests.support.paths import FACTORY
from tests.support.records import prediction_log


def log_of(site: str) -> dict[str, Any]:
    return prediction_log(f"r-{site}", site=site)


def test_a_site_logs_its_own_predictions_only(tmp_path: Path) -> None:
    keys = key_file(tmp_path)
    producer = FakeProducer()
    settings = Settings(project=str(FACTORY), database_url="", **keys.settings())
    runtime = bootstrap(settings, producer=producer)  # type: ignore[arg-type]
    runtime.started = True  # the producer in memory is connected: no lifespan here
    client = TestClient(create_app(runtime))
    own = client.post(
        "/v1/predictions", json={"predictions": [log_of("s1")]}, headers=keys.headers("site:s1")
    )
    assert own.status_code == 202, own.text
    forged = client.post(
        "/v1/predictions",
        json={"predictions": [log_of("s1"), log_of("s2")]},
        headers=keys.headers("site:s1"),
    )
    assert forged.status_code == 403 and forged.json()["field"] == "predictions[1].site"
    assert len(producer.sent) == 1  # nothing of the forged batch was sent
