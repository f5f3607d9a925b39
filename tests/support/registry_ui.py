"""The registry's web UI for tests: a registry populated with everything the pages show,
and a page's visible text."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.support.registry import registration

SCRIPT = "<script>alert(1)</script>"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def lineage(request_id: str) -> dict[str, Any]:
    """What the trainer records (DESIGN §7), trimmed to what the pages show."""
    return {
        "project": {"name": "factory", "git_commit": "c0ffee" * 6 + "abcd", "dirty": False},
        "platform": {"version": "0.1.0", "git_commit": "feed" * 10},
        "snapshot": {
            "uri": f"s3://lake/datasets/machines/{request_id}.parquet",
            "sha256": "5e" * 32,
            "rows": 4321,
            "cutoff": T0.isoformat(),
        },
        "feature_set": {"name": "machines", "version": 2, "features": ["a", "b"]},
        "environment": {
            "python": "3.11.9",
            "lock_sha256": "10c4" * 16,
            "libraries": {"scikit-learn": "1.5.2", "onnx": "1.17.0"},
        },
        "train_request": {"request_id": request_id, "reason": "every 500 labelled rows"},
        "champion": None,
        "seed": 7,
    }


def trained(request_id: str, f1: float, *, run_id: str, trees: int, **extra: Any) -> dict[str, Any]:
    return registration(
        request_id,
        f1,
        params={"n_estimators": trees, "max_depth": 6},
        lineage=lineage(request_id),
        run={
            "run_id": run_id,
            "timings": {"fit": 1.5, "convert": 0.25},
            "started_at": T0.isoformat(),
            "finished_at": (T0 + timedelta(seconds=2)).isoformat(),
        },
        **extra,
    )


def populate(client: TestClient) -> None:
    """Two versions with runs, a failed run, a manual alias move, a canary, a site."""
    first = trained("req-1", 0.81, run_id="run-1", trees=100)
    assert client.post("/v1/models/machine-failure/versions", json=first).status_code == 201
    described = client.patch(
        "/v1/models/machine-failure",
        json={
            "description": f"failure within the hour {SCRIPT}",
            "tags": {"team": "maintenance", "owner": SCRIPT},
        },
    )
    assert described.status_code == 200, described.text
    second = trained("req-2", 0.86, run_id="run-2", trees=300, champion=0.8, champion_version=1)
    assert client.post("/v1/models/machine-failure/versions", json=second).status_code == 201
    failed = client.put(
        "/v1/models/machine-failure/runs/run-3",
        json={
            "request_id": "req-3",
            "status": "failed",
            "params": {"n_estimators": 500},
            "failure_reason": "snapshot lacks columns ['vibration']",
            "started_at": T0.isoformat(),
            "finished_at": (T0 + timedelta(seconds=1)).isoformat(),
        },
    )
    assert failed.status_code == 200, failed.text
    moved = client.post(
        "/v1/models/machine-failure/aliases/production",
        json={"version": 1, "reason": f"latency regression on v2 {SCRIPT}", "actor": "ana"},
    )
    assert moved.status_code == 200, moved.text
    canary = client.put(
        "/v1/models/machine-failure/traffic",
        json={"mode": "canary", "percent": 10, "reason": "try v2 again", "actor": "ana"},
    )
    assert canary.status_code == 200, canary.text
    client.post("/v1/models/other/versions", json=registration("o-1", 0.5))
    site = client.put(
        "/v1/sites/plant-1/deployments/machine-failure",
        json={"alias": "production", "reason": "pilot"},
    )
    assert site.status_code == 200, site.text
    beat = {
        "site": "plant-1",
        "models": [{"name": "machine-failure", "alias": "production", "version": 2}],
        "last_sync": T0.isoformat(),
        "queue_depth": 17,
        "drops": 3,
        "last_error": "broker unreachable",
        "sent_at": datetime.now(UTC).isoformat(),
    }
    assert client.post("/v1/sites/plant-1/heartbeats", json=beat).status_code == 201


def text(body: str) -> str:
    """The page's visible text, tags dropped and whitespace folded, for readable asserts."""
    body = re.sub(r"<style>.*?</style>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def page(client: TestClient, url: str, **params: Any) -> str:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "<script" not in response.text  # the pages have no script: user text is escaped
    return response.text
