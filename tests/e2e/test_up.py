"""``millrace init`` and ``millrace up --project DIR`` on a team's own project, as a user
runs them: no simulator; the churn CSV, whose entity and time columns are not
``entity_id``/``ts``, goes in with ``millrace ingest file``, the project's model reaches
production as good as the same spec fitted by hand, serving answers by customer id, and
Ctrl-C stops everything."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from millrace_cli.platform import DEFAULT_PORTS
from millrace_cli.processes import wait_until
from millrace_common.objectstore import key_of
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score

from tests.support.platform import free_offset

MILLRACE = Path(sys.executable).parent / "millrace"
RECORDS = 4_000  # what millrace init writes: 400 customers, 10 weeks


def plain_scikit_learn_f1(snapshot: Path, features: list[str]) -> float:
    """The model spec fitted by hand on the same snapshot and the same time split."""
    table = pq.read_table(snapshot).sort_by(
        [("event_time", "ascending"), ("event_id", "ascending")]
    )
    table = table.filter(pc.is_valid(table["label"]))
    cut = table.num_rows - math.ceil(table.num_rows * 0.2)
    x = np.column_stack([table[name].to_numpy().astype(float) for name in features])
    y = table["label"].to_numpy().astype(int)
    model = RandomForestClassifier(n_estimators=60, max_depth=6, random_state=7)
    model.fit(x[:cut], y[:cut])
    return float(f1_score(y[cut:], model.predict(x[cut:])))


def test_millrace_up_brings_a_teams_own_model_to_production(tmp_path: Path) -> None:
    project = tmp_path / "churn"
    made = subprocess.run([str(MILLRACE), "init", str(project)], capture_output=True, text=True)
    assert made.returncode == 0 and "next: millrace up --project" in made.stdout, made.stderr
    data = project / "customers.csv"
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
        assert f"sent {RECORDS} records" in sent.stdout
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
            json={"entity_ids": ["c-0007", "c-0121"]},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert [p["label"] in (0, 1) for p in answer.json()["predictions"]] == [True, True]
        version = httpx.get(f"{url('registry')}/v1/models/churn/versions/1", headers=headers)
        doc = version.json()
        assert doc["metrics"]["roc_auc"] > 0.8, version.text
        # the platform's model is as good as the same spec fitted by hand on its snapshot
        snapshot = tmp_path / "up" / "objects" / key_of(doc["lineage"]["snapshot"]["uri"])
        features = doc["schema"]["features"]
        by_hand = plain_scikit_learn_f1(snapshot, features)
        assert abs(doc["metrics"]["f1"] - by_hand) <= 0.03, (doc["metrics"], by_hand)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)  # Ctrl-C
        code = up.wait(timeout=120)
    assert code == 0 and said().rstrip().endswith("stopped"), said()[-2000:]
