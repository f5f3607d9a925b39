"""The registry's web UI on SQLite: every page renders the registry's real data, user input
is escaped, unknown things are 404 pages naming them and bad parameters 422 pages naming
the field."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from millrace_common.contracts import LabelObserved, PredictionLogged
from millrace_registry.app import Runtime, create_app
from millrace_registry.monitor_intake import label_row, prediction_rows

from tests.support.identity import key_file
from tests.support.registry import registry_runtime, stand_in
from tests.support.registry_ui import SCRIPT, page, populate, text


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
    v2_digest = stand_in("req-2").etag
    assert "f1=0.86" in shown and "n_estimators=300" in shown and v2_digest[:12] in shown
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


def test_a_browser_signs_in_with_the_key_as_its_password(tmp_path: Path) -> None:
    """With authentication on, the UI asks the browser for credentials (Basic) and takes
    a key as the password, whatever the user name; a producer's key may not look."""
    keys = key_file(tmp_path)
    ui = TestClient(create_app(registry_runtime(f"sqlite:///{tmp_path}/r.db", **keys.settings())))
    asked = ui.get("/ui")
    assert asked.status_code == 401 and "Basic" in asked.headers["www-authenticate"]
    assert ui.get("/ui", auth=("alice", keys.tokens["scientist"])).status_code == 200
    assert ui.get("/ui", auth=("alice", keys.tokens["producer"])).status_code == 403
    assert ui.get("/ui", auth=("alice", "not-a-key")).status_code == 401


def test_the_live_quality_page_charts_each_version_per_window_and_by_version(
    client: TestClient, runtime: Runtime
) -> None:
    populate(client)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    predictions, labels = [], []
    for hour in range(3):
        for i in range(10):
            for version, alias, right in ((1, "production", 8), (2, "challenger", 5 + hour)):
                request = f"{version}-{hour}-{i}"
                truth = i % 2
                guess = truth if i < right else 1 - truth
                predictions += prediction_rows(
                    PredictionLogged(
                        request_id=request,
                        model="machine-failure",
                        version=version,
                        alias=alias,
                        inputs_sha256="0" * 64,
                        outputs=[{"label": guess, "probabilities": [1.0 - guess, float(guess)]}],
                        latency_ms=1.0,
                        at=now - timedelta(hours=3 - hour, minutes=-i),
                    )
                )
                labels.append(
                    label_row(
                        LabelObserved(
                            event_id=request,
                            dataset="machines",
                            field="failure_within_1h",
                            value=truth,
                            request_id=request,
                            at=now,
                        )
                    )
                )
    runtime.monitoring.record(predictions=predictions, labels=labels)

    body = page(client, "/ui/models/machine-failure/monitoring", metric="accuracy")
    charts = {svg.get("id"): svg for svg in _svgs(body)}
    lines = charts["quality-over-time"].findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 2  # v1 production, v2 challenger
    points = charts["quality-over-time"].findall("{http://www.w3.org/2000/svg}circle")
    assert len(points) == 6  # three windows each
    tips = [c.find("{http://www.w3.org/2000/svg}title").text for c in points]  # type: ignore[union-attr]
    assert any("v2 challenger" in t and "accuracy 0.7000 on 10 labelled of 10" in t for t in tips)
    bars = charts["quality-by-version"].findall("{http://www.w3.org/2000/svg}rect")
    assert len(bars) == 2
    shown = text(body)
    assert "Labels: 60 received, 60 matched, 0 unmatched" in shown
    assert "Against production" in shown and "challenger" in shown
    empty = page(client, "/ui/models/other/monitoring")
    assert "No labelled predictions" in text(empty)
    bad = client.get("/ui/models/machine-failure/monitoring", params={"window": "soon"})
    assert bad.status_code == 422 and "window" in text(bad.text)


def _svgs(body: str) -> list[ElementTree.Element]:
    """Every inline chart, parsed as XML: a browser draws only well-formed SVG."""
    found = re.findall(r"<svg .*?</svg>", body, flags=re.S)
    return [
        ElementTree.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))
        for svg in found
    ]
