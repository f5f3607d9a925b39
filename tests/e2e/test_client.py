"""The Python client's example (``examples/client/churn_notebook.py``) run as a user runs
it, against ``millrace up`` on the churn project: records sent from a DataFrame, a
point-in-time training frame, a run recorded with its metrics and a file, the notebook's
own model uploaded, evaluated, promoted and answering predictions."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

from tests.support.paths import ROOT
from tests.support.up import millrace_up

EXAMPLE = ROOT / "examples" / "client" / "churn_notebook.py"


def test_the_client_example_runs_against_a_teams_platform(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with millrace_up(tmp_path) as up:
        urls = {
            f"MILLRACE_{s.upper()}_URL": up.url(s)
            for s in ("ingest", "features", "registry", "serving")
        }
        done = subprocess.run(
            [sys.executable, str(EXAMPLE), str(up.project / "customers.csv")],
            env=up.env | urls,
            capture_output=True,
            text=True,
            timeout=900,
        )
        said = done.stdout + done.stderr
        assert done.returncode == 0, said
        assert "sent 4000 records" in done.stdout
        assert "training frame: 4000 rows, each as of its own time" in done.stdout
        uploaded = re.search(r"uploaded as v(\d+): ready", done.stdout)
        assert uploaded and f"v{uploaded.group(1)} is in production" in done.stdout, said
        assert len(re.findall(r"^v\d+: label [01]$", done.stdout, re.MULTILINE)) == 4, said
        version = int(uploaded.group(1))

        registry = httpx.Client(
            base_url=up.url("registry"), headers={"Authorization": f"Bearer {up.token}"}, timeout=30
        )
        run_id = re.search(r"^run (nb-[0-9a-f]+):", done.stdout, re.MULTILINE).group(1)  # type: ignore[union-attr]
        run = registry.get(f"/v1/models/churn/runs/{run_id}").json()
        assert run["status"] == "succeeded" and run["params"] == {"C": 0.5, "max_iter": 1000}
        assert run["metrics"]["roc_auc"] > 0.75, run
        assert [a["path"] for a in run["details"]["artifacts"]] == ["holdout-report.txt"]
        report = registry.get(f"/v1/models/churn/runs/{run_id}/artifacts/holdout-report.txt")
        assert report.status_code == 200 and "precision" in report.text
        listed = registry.get(f"/v1/models/churn/runs/{run_id}/artifacts").json()
        assert [a["path"] for a in listed] == ["holdout-report.txt"]
        doc = registry.get(f"/v1/models/churn/versions/{version}").json()
        assert doc["lineage"]["upload"]["description"] == "notebook logistic"
        moves = registry.get("/v1/models/churn/audit").json()
        assert any(m["alias"] == "production" and m["to_version"] == version for m in moves)
