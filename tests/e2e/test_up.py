"""``millrace up --project DIR`` on a team's own project, as a user runs it: no simulator;
a CSV of customers whose entity and time columns are not ``entity_id``/``ts`` goes in with
``millrace ingest file``, the project's model reaches production, serving answers by
customer id, and Ctrl-C stops everything."""

from __future__ import annotations

import csv
import os
import random
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from millrace_cli.platform import DEFAULT_PORTS
from millrace_cli.processes import wait_until

from tests.support.platform import free_offset

MILLRACE = Path(sys.executable).parent / "millrace"
CUSTOMERS, WEEKS = 150, 16
SPEC = """\
project: churn
datasets:
  customers:
    entity: customer_id
    time: as_of
    fields: {tenure_weeks: int, monthly_charges: float, support_calls: int, contract: str}
    labels: {churned: int}
feature_sets:
  customer_profile:
    dataset: customers
    label: churned
    features:
      - {name: charges_last, field: monthly_charges, agg: last, window: 3650d}
      - {name: calls_28d, field: support_calls, agg: sum, window: 28d}
      - {name: tenure_last, field: tenure_weeks, agg: last, window: 3650d}
      - {name: contracts_seen_28d, field: contract, agg: count, window: 28d}
models:
  churn:
    feature_set: customer_profile
    task: classification
    estimator: sklearn.ensemble.RandomForestClassifier
    params: {n_estimators: 30, max_depth: 5}
    metric: roc_auc
    retrain: {every_n_labelled_rows: 1500}
"""


def churn_csv(path: Path) -> None:
    """Weekly records of CUSTOMERS customers; the rule: many recent support calls on a
    high bill churn."""
    rng = random.Random(11)
    start = datetime(2026, 6, 1, tzinfo=UTC)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["customer_id", "as_of", "tenure_weeks", "monthly_charges", "support_calls",
                      "contract", "churned"])  # fmt: skip
        for week in range(WEEKS):
            for c in range(CUSTOMERS):
                charges = round(30 + 70 * ((c * 37) % 100) / 100 + rng.gauss(0, 3), 2)
                calls = rng.choice([0, 0, 0, 1, 1, 2, 3, 4, 5])
                churned = int(calls >= 3 and charges > 65)
                at = (start + timedelta(weeks=week)).isoformat().replace("+00:00", "Z")
                contract = "month-to-month" if c % 3 else "two-year"
                out.writerow([f"c-{c:03d}", at, week + c % 40, charges, calls, contract, churned])


def test_millrace_up_brings_a_teams_own_model_to_production(tmp_path: Path) -> None:
    project = tmp_path / "churn"
    project.mkdir()
    (project / "millrace.yaml").write_text(SPEC)
    data = tmp_path / "customers.csv"
    churn_csv(data)
    offset = free_offset()
    console = tmp_path / "console.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MILLRACE_")}
    with console.open("wb") as out:
        up = subprocess.Popen(
            [str(MILLRACE), "up", "--project", str(project), "--workdir", str(tmp_path / "up")]
            + ["--port-offset", str(offset)],
            env=env | {"COLUMNS": "300"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def said() -> str:
        return console.read_text(errors="replace")

    def url(service: str) -> str:
        return f"http://127.0.0.1:{DEFAULT_PORTS[service] + offset}"

    try:
        wait_until(
            lambda: "Ctrl-C stops everything" in said() or up.poll() is not None,
            timeout=300,
            what="millrace up to start the platform",
            interval=1,
        )
        assert up.poll() is None, said()
        assert "Send dataset 'customers' (customer_id, as_of, tenure_weeks" in said()
        token = re.search(r"export MILLRACE_TOKEN=(\S+)", said()).group(1)  # type: ignore[union-attr]
        sent = subprocess.run(
            [str(MILLRACE), "ingest", "file", str(data), "--dataset", "customers"]
            + ["--url", url("ingest")],
            env=env | {"MILLRACE_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert f"sent {CUSTOMERS * WEEKS} records" in sent.stdout
        wait_until(
            lambda: "churn v1 is in production" in said() or up.poll() is not None,
            timeout=420,
            what="the churn model in production",
            interval=1,
        )
        assert up.poll() is None, said()
        headers = {"Authorization": f"Bearer {token}"}
        answer = httpx.post(
            f"{url('serving')}/v1/models/churn/predict",
            json={"entity_ids": ["c-007", "c-121"]},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert [p["label"] in (0, 1) for p in answer.json()["predictions"]] == [True, True]
        version = httpx.get(f"{url('registry')}/v1/models/churn/versions/1", headers=headers)
        assert version.json()["metrics"]["roc_auc"] > 0.8, version.text
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)  # Ctrl-C
        code = up.wait(timeout=120)
    assert code == 0 and said().rstrip().endswith("stopped"), said()[-2000:]
