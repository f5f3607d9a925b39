"""The registry's web UI on SQLite: every page renders the registry's real data, user input
is escaped, unknown things are 404 pages naming them and bad parameters 422 pages naming
the field."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.unit.registry.test_registry_api import client, producer, registration, runtime, store

__all__ = ["client", "producer", "runtime", "store"]  # fixtures reused
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


def test_the_root_leads_to_the_models_page(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code in (302, 307) and response.headers["location"] == "/ui"


def test_models_page_lists_aliases_latest_and_productions_key_metric(client: TestClient) -> None:
    populate(client)
    shown = text(page(client, "/ui"))
    assert "machine-failure" in shown and "other" in shown
    assert "production → v1" in shown and "challenger → v2" not in shown
    assert "f1=0.81 (v1)" in shown  # production's promotion metric, after the move back
    assert "team=maintenance" in shown
    found = page(client, "/ui", tag="team=maintenance")
    assert "/ui/models/machine-failure" in found and "/ui/models/other" not in found
    assert "1–1 of 1" in text(found)
    by_name = page(client, "/ui", name="oth")
    assert "/ui/models/other" in by_name and "/ui/models/machine-failure" not in by_name
    paged = page(client, "/ui", limit=1)
    assert "1–1 of 2" in text(paged) and "offset=1" in paged


def test_model_page_shows_versions_aliases_traffic_and_commands(client: TestClient) -> None:
    populate(client)
    body = page(client, "/ui/models/machine-failure")
    shown = text(body)
    assert f"failure within the hour {SCRIPT}" in shown  # user text, escaped in the HTML
    assert html.escape(SCRIPT, quote=False) in body
    assert "canary" in shown and "10%" in shown and "try v2 again" in shown
    assert "f1=0.86" in shown and "n_estimators=300" in shown and ("ab" * 6) in shown
    # v2 is ready and not in production: the promote command, copyable, beside it
    assert (
        "millrace models promote machine-failure 2 --reason 'why' --registry http://testserver"
        in shown
    )
    assert "curl -X POST http://testserver/v1/models/machine-failure/aliases/production" in shown
    assert shown.index("v2") < shown.index("v1 ")  # newest first
    rejected = text(page(client, "/ui/models/machine-failure", status="rejected"))
    assert "No version is rejected" in rejected


def test_version_page_reads_the_lineage_with_the_raw_json(client: TestClient) -> None:
    populate(client)
    body = page(client, "/ui/models/machine-failure/versions/2")
    shown = text(body)
    for expected in (
        "s3://lake/datasets/machines/req-2.parquet",
        "5e" * 32,
        "c0ffee" * 6 + "abcd",
        "3.11.9",
        "scikit-learn",
        "every 500 labelled rows",
        "machines",
        "run-2",
        "f1 0.86 0.8 +0.06",  # this version, the champion on the same holdout, the gap
        "latency regression on v2",  # the move away from it, in its alias history
    ):
        assert expected in shown, expected
    assert "<details>" in body and '"lock_sha256"' in html.unescape(body)
    # v1 holds production: v2 can be promoted, and production rolled back to nothing older
    assert "millrace models promote machine-failure 2" in shown
    assert "rollback" not in shown.split("Promote or roll back")[1].split("Metrics")[0]


def test_an_earlier_ready_version_offers_the_rollback(client: TestClient) -> None:
    populate(client)
    client.post(
        "/v1/models/machine-failure/aliases/production", json={"version": 2, "reason": "fixed"}
    )
    shown = text(page(client, "/ui/models/machine-failure/versions/1"))
    assert "millrace models rollback machine-failure --to 1 --reason 'why'" in shown
    assert "curl -X POST http://testserver/v1/models/machine-failure/rollback" in shown


def test_audit_page_shows_the_alias_move_newest_first_and_pages(client: TestClient) -> None:
    populate(client)
    shown = text(page(client, "/ui/models/machine-failure/audit"))
    assert f"ana alias moved production v2 → v1 latency regression on v2 {SCRIPT}" in shown
    assert shown.index("traffic canary") < shown.index("alias moved")  # newest first
    first = text(page(client, "/ui/models/machine-failure/audit", limit=2))
    second = text(page(client, "/ui/models/machine-failure/audit", limit=2, offset=2))
    assert "1–2 of" in first and "3–4 of" in second
    assert "traffic canary" in first and "traffic canary" not in second


def test_runs_page_and_the_comparison_of_selected_runs(client: TestClient) -> None:
    populate(client)
    body = page(client, "/ui/models/machine-failure/runs")
    shown = text(body)
    assert "failed" in shown and "snapshot lacks columns ['vibration']" in shown
    assert 'name="run" value="run-1"' in body and "/ui/models/machine-failure/compare" in body
    compared = page(client, "/ui/models/machine-failure/compare", run=["run-1", "run-2"])
    rows = {
        text(row).split(" ")[0]: 'class="diff"' in row
        for row in re.findall(r"<tr[^>]*>.*?</tr>", compared, flags=re.S)
    }
    assert rows["n_estimators"] and rows["f1"]  # they differ: highlighted
    assert not rows["max_depth"] and not rows["fit"]  # the same: plain
    assert "100 300" in text(compared) and "0.81 0.86" in text(compared)


def test_sites_pages_show_should_run_beside_the_heartbeat(client: TestClient) -> None:
    populate(client)
    shown = text(page(client, "/ui/sites"))
    assert "plant-1" in shown and "out of sync" in shown  # should run v1, reports v2
    assert "machine-failure production : v1 / v2" in shown
    assert "17" in shown and "broker unreachable" in shown
    site = text(page(client, "/ui/sites/plant-1"))
    assert "Heartbeat history" in site and "broker unreachable" in site
    assert "machine-failure production site" in site  # assigned to the site itself
    assert "sites/plant-1/manifest.json" in site


def test_a_site_named_with_a_script_is_escaped(client: TestClient) -> None:
    named = "<script>alert(1)"  # a path segment cannot hold the closing tag's slash
    beat = {"site": named, "sent_at": datetime.now(UTC).isoformat(), "last_error": SCRIPT}
    assert client.post(f"/v1/sites/{named}/heartbeats", json=beat).status_code == 201
    body = page(client, "/ui/sites")
    assert html.escape(named) in body and html.escape(SCRIPT) in body
    assert named in text(page(client, f"/ui/sites/{named}"))
    missing = client.get(f"/ui/models/{named}")
    assert missing.status_code == 404 and "<script" not in missing.text
    assert f"no model '{named}'" in text(missing.text)


def test_unknown_things_are_404_pages_naming_them(client: TestClient) -> None:
    populate(client)
    for url, named in (
        ("/ui/models/nope", "no model 'nope'"),
        ("/ui/models/nope/runs", "no model 'nope'"),
        ("/ui/models/nope/audit", "no model 'nope'"),
        ("/ui/models/machine-failure/versions/9", "model 'machine-failure' has no version 9"),
        ("/ui/models/machine-failure/compare?run=run-1&run=ghost", "has no run 'ghost'"),
        ("/ui/sites/atlantis", "no site 'atlantis'"),
        (
            "/ui/models/machine-failure/versions/1/extra",
            "no page /ui/models/machine-failure/versions/1/extra",
        ),
        ("/ui/nothing-here", "no page /ui/nothing-here"),
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.headers["content-type"].startswith("text/html")
        assert named in text(response.text), url


def test_bad_parameters_are_422_pages_naming_the_field(client: TestClient) -> None:
    populate(client)
    for url, field in (
        ("/ui?limit=0", "limit"),
        ("/ui?offset=-1", "offset"),
        ("/ui?tag=%3Cbad", "tag"),
        ("/ui?alias=Not_OK", "alias"),
        ("/ui/models/machine-failure?status=bogus", "status"),
        ("/ui/models/machine-failure/runs?status=done", "status"),
        ("/ui/models/machine-failure/versions/two", "version"),
        ("/ui/models/machine-failure/compare?run=run-1", "run"),
        ("/ui/sites?limit=5000", "limit"),
    ):
        response = client.get(url)
        assert response.status_code == 422, url
        assert response.headers["content-type"].startswith("text/html")
        assert f"field: {field}" in text(response.text), url
