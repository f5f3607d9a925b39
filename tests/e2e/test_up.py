"""``millrace init`` and ``millrace up --project DIR`` on a team's own project, as a user
runs them: no simulator; the churn CSV, whose entity and time columns are not
``entity_id``/``ts``, goes in with ``millrace ingest file``, the project's model reaches
production as good as the same spec fitted by hand, serving answers by customer id, and
Ctrl-C stops everything. Models of the team's own (a scikit-learn pipeline, XGBoost,
LightGBM) come in through ``millrace models upload`` and are judged like trained ones;
each kind of bad upload is refused or rejected with its reason; ``millrace score`` of a
file answers as serving does."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from millrace_common.objectstore import key_of
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline

from tests.support.up import MILLRACE, Up, millrace_up

RECORDS = 4_000  # what millrace init writes: 400 customers, 10 weeks


Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def time_split(snapshot: Path, features: list[str]) -> Split:
    """The snapshot's labelled rows in time order, the last fifth held out (the spec's
    holdout_fraction), split by hand."""
    table = pq.read_table(snapshot).sort_by(
        [("event_time", "ascending"), ("event_id", "ascending")]
    )
    table = table.filter(pc.is_valid(table["label"]))
    cut = table.num_rows - math.ceil(table.num_rows * 0.2)
    x = np.column_stack([table[name].to_numpy().astype(np.float32) for name in features])
    y = table["label"].to_numpy().astype(int)
    return x[:cut], y[:cut], x[cut:], y[cut:]


def plain_scikit_learn_f1(snapshot: Path, features: list[str]) -> float:
    """The model spec fitted by hand on the same snapshot and the same time split."""
    x, y, x_holdout, y_holdout = time_split(snapshot, features)
    # a missing value (a ratio over no calls) imputed by the median, as the platform does
    model = make_pipeline(
        SimpleImputer(strategy="median"),
        RandomForestClassifier(n_estimators=60, max_depth=6, random_state=7),
    )
    model.fit(x, y)
    return float(f1_score(y_holdout, model.predict(x_holdout)))


def test_millrace_up_brings_a_teams_own_model_to_production(tmp_path: Path) -> None:
    with millrace_up(tmp_path) as up:
        assert "Send dataset 'customers' (customer_id, as_of, tenure_weeks" in up.said()
        sent = subprocess.run(
            [str(MILLRACE), "ingest", "file", str(up.project / "customers.csv")]
            + ["--dataset", "customers", "--url", up.url("ingest")],
            env=up.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert f"sent {RECORDS} records" in sent.stdout
        up.wait_for("churn v1 is in production", timeout=420, what="the churn model in production")
        headers = {"Authorization": f"Bearer {up.token}"}
        answer = httpx.post(
            f"{up.url('serving')}/v1/models/churn/predict",
            json={"entity_ids": ["c-0007", "c-0121"]},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert [p["label"] in (0, 1) for p in answer.json()["predictions"]] == [True, True]
        version = httpx.get(f"{up.url('registry')}/v1/models/churn/versions/1", headers=headers)
        doc = version.json()
        assert doc["metrics"]["roc_auc"] > 0.8, version.text
        # the platform's model is as good as the same spec fitted by hand on its snapshot
        snapshot = up.workdir / "objects" / key_of(doc["lineage"]["snapshot"]["uri"])
        features = doc["schema"]["features"]
        by_hand = plain_scikit_learn_f1(snapshot, features)
        assert abs(doc["metrics"]["f1"] - by_hand) <= 0.03, (doc["metrics"], by_hand)
        uploads_are_judged(
            tmp_path,
            split=time_split(snapshot, features),
            env=up.env,
            registry=up.url("registry"),
            features=up.url("features"),
            objects=up.workdir / "objects",
        )
        batch_scoring_answers_as_serving_does(
            tmp_path, up=up, rows=time_split(snapshot, features)[2], features=features
        )


def batch_scoring_answers_as_serving_does(
    tmp_path: Path, *, up: Up, rows: np.ndarray, features: list[str]
) -> None:
    """``millrace score`` of the holdout's rows, to Parquet and to CSV, gives serving's
    answers for the same rows and version; each row names the version and the run."""
    frame = pa.table({name: rows[:, j] for j, name in enumerate(features)})
    frame = frame.append_column("customer", pa.array([f"c-{i}" for i in range(len(rows))]))
    source = tmp_path / "to-score.parquet"
    pq.write_table(frame, source)
    headers = {"Authorization": f"Bearer {up.token}"}
    instances = [
        {name: (None if np.isnan(v) else float(v)) for name, v in zip(features, row, strict=True)}
        for row in rows
    ]
    served = httpx.post(
        f"{up.url('serving')}/v1/models/churn/predict",
        json={"instances": instances},
        headers=headers,
        timeout=60,
    )
    assert served.status_code == 200, served.text
    expected, version = served.json()["predictions"], served.json()["version"]
    for sink in ("scored.parquet", "scored.csv"):
        done = subprocess.run(
            [str(MILLRACE), "score", str(source), "--model", "churn", "--version", str(version)]
            + ["--to", str(tmp_path / sink), "--chunk", "97", "--registry", up.url("registry")],
            env=up.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"scored {len(rows)} rows with churn v{version}" in done.stdout
        table = (
            pq.read_table(tmp_path / sink)
            if sink.endswith(".parquet")
            else pcsv.read_csv(tmp_path / sink)
        )
        assert table.column("customer").to_pylist() == frame.column("customer").to_pylist()
        assert table.column("label").to_pylist() == [p["label"] for p in expected]
        got = np.column_stack([table.column(f"probability_{k}").to_numpy() for k in (0, 1)])
        want = np.array([p["probabilities"] for p in expected])
        assert np.abs(got - want).max() < 1e-5  # serving rounds to 6 places
        assert set(table.column("model_version").to_pylist()) == {version}
        assert len(set(table.column("run_id").to_pylist())) == 1
    # entity ids and times instead of features: looked up point in time in the offline
    # store; at each customer's last week, what serving's online row gives
    last_week = datetime(2026, 8, 3, tzinfo=UTC)  # the tenth week of the example's data
    customers = ["c-0007", "c-0121", "c-0333"]
    keys = pa.table({"customer_id": customers, "as_of": [last_week] * len(customers)})
    pq.write_table(keys, tmp_path / "keys.parquet")
    by_id = httpx.post(
        f"{up.url('serving')}/v1/models/churn/predict",
        json={"entity_ids": customers},
        headers=headers,
        timeout=60,
    ).json()
    looked_up = subprocess.run(
        [str(MILLRACE), "score", str(tmp_path / "keys.parquet"), "--model", "churn"]
        + ["--version", str(by_id["version"]), "--to", str(tmp_path / "by-id.parquet")]
        + ["--entity-column", "customer_id", "--time-column", "as_of"]
        + ["--registry", up.url("registry"), "--features-url", up.url("features")],
        env=up.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert looked_up.returncode == 0, looked_up.stdout + looked_up.stderr
    table = pq.read_table(tmp_path / "by-id.parquet")
    assert table.column("label").to_pylist() == [p["label"] for p in by_id["predictions"]]
    assert set(features) <= set(table.schema.names)  # the looked-up values, beside the keys
    # a file without one of the model's features: one line naming it, nothing scored
    pq.write_table(frame.drop_columns([features[0]]), tmp_path / "short.parquet")
    refused = subprocess.run(
        [str(MILLRACE), "score", str(tmp_path / "short.parquet"), "--model", "churn"]
        + ["--to", str(tmp_path / "none.parquet"), "--registry", up.url("registry")],
        env=up.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"missing feature '{features[0]}'" in refused.stderr


def uploads_are_judged(
    tmp_path: Path,
    *,
    split: Split,
    env: dict[str, str],
    registry: str,
    features: str,
    objects: Path,
) -> None:
    """``millrace models upload`` of models fitted here on the platform's own snapshot:
    good ones registered ready with metrics the platform computed on its holdout, bad
    ones rejected or left candidates, each with the reason."""
    import lightgbm
    import onnxmltools
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType as SklearnFloats
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    x, y, x_holdout, _ = split
    width = x.shape[1]
    typed = [("features", FloatTensorType([None, width]))]

    def sklearn_onnx(estimator: object, columns: int = width) -> bytes:
        return to_onnx(  # type: ignore[no-any-return]
            estimator,
            initial_types=[("input", SklearnFloats([None, columns]))],
            options={"zipmap": False},
            target_opset=17,
        ).SerializeToString()

    def upload(name: str, onnx: bytes, samples: dict[str, object] | None = None) -> dict:
        model = tmp_path / name
        model.write_bytes(onnx)
        extra = []
        if samples is not None:
            (tmp_path / f"{name}.json").write_text(json.dumps(samples))
            extra = ["--samples", str(tmp_path / f"{name}.json")]
        done = subprocess.run(
            [str(MILLRACE), "models", "upload", str(model), "--name", "churn", "--json"]
            + ["--registry", registry, "--features-url", features, *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert "Traceback" not in done.stderr, done.stderr
        result: dict = json.loads(done.stdout)
        assert done.returncode == (0 if result["run"]["status"] == "succeeded" else 1), done
        return result

    def samples_of(estimator: object, rows: np.ndarray) -> dict[str, object]:
        return {
            "rows": [[None if np.isnan(v) else v for v in row] for row in rows.tolist()],
            "predictions": estimator.predict(rows).tolist(),  # type: ignore[attr-defined]
            "probabilities": estimator.predict_proba(rows).tolist(),  # type: ignore[attr-defined]
        }

    # a scikit-learn pipeline, with sample predictions for the parity check
    def logistic() -> object:
        return make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=500))

    pipeline = logistic().fit(x, y)  # type: ignore[attr-defined]
    onnx = sklearn_onnx(pipeline)
    judged = upload("pipeline.onnx", onnx, samples_of(pipeline, x_holdout[:50]))
    version = judged["version"]
    assert version["status"] == "ready", judged
    assert version["sha256"] == hashlib.sha256(onnx).hexdigest() and version["size"] == len(onnx)
    lineage = version["lineage"]
    assert (
        lineage["upload"]["filename"] == "pipeline.onnx" and "artifact_uri" not in lineage["upload"]
    )
    assert lineage["checks"]["passed"] and lineage["checks"]["sample_rows"] == 50
    # its metrics are the platform's own, on the holdout of the snapshot it cut for it
    _, _, holdout, y_holdout = time_split(
        objects / key_of(lineage["snapshot"]["uri"]), lineage["feature_set"]["features"]
    )
    expected = roc_auc_score(y_holdout, pipeline.predict_proba(holdout)[:, 1])
    assert abs(version["metrics"]["roc_auc"] - expected) < 1e-4, (version["metrics"], expected)
    assert version["metrics"]["roc_auc"] > lineage["baseline"]["roc_auc"]

    # XGBoost and LightGBM through onnxmltools' converters, inputs named as the user likes
    boosted = xgboost.XGBClassifier(n_estimators=40, max_depth=3).fit(x, y)
    onnx = onnxmltools.convert_xgboost(boosted, initial_types=typed, target_opset=15)
    judged = upload("xgboost.onnx", onnx.SerializeToString(), samples_of(boosted, x_holdout[:50]))
    assert judged["version"]["status"] == "ready", judged
    light = lightgbm.LGBMClassifier(n_estimators=40, verbose=-1).fit(x, y)
    onnx = onnxmltools.convert_lightgbm(light, initial_types=typed, target_opset=15, zipmap=False)
    judged = upload("lightgbm.onnx", onnx.SerializeToString(), samples_of(light, x_holdout[:50]))
    assert judged["version"]["status"] == "ready", judged
    assert judged["version"]["metrics"]["roc_auc"] > 0.75, judged["version"]["metrics"]

    # refusals, each with its reason: a model of other inputs, one whose answers differ
    # from its samples, one that gives maps (ZipMap), one worse than a trivial model
    narrow = logistic().fit(x[:, :4], y)  # type: ignore[attr-defined]
    judged = upload("narrow.onnx", sklearn_onnx(narrow, columns=4))
    assert judged["version"]["status"] == "rejected", judged
    assert (
        f"of shape [None, 4]; it must be one float32 input of shape [N, {width}]"
        in (judged["version"]["rejection_reason"])
    )
    lying = samples_of(pipeline, x_holdout[:50])
    lying["predictions"] = [1 - p for p in lying["predictions"]]  # type: ignore[attr-defined]
    del lying["probabilities"]
    judged = upload("lying.onnx", sklearn_onnx(pipeline), lying)
    assert judged["version"]["status"] == "rejected", judged
    assert (
        "labels differ from the uploaded sample predictions on 50 sample rows"
        in (judged["version"]["rejection_reason"])
    )
    maps = onnxmltools.convert_lightgbm(light, initial_types=typed, target_opset=15)
    judged = upload("zipmap.onnx", maps.SerializeToString())
    assert "zipmap=False" in judged["version"]["rejection_reason"], judged
    backwards = logistic().fit(x, 1 - y)  # type: ignore[attr-defined]  # the rule upside down
    judged = upload("backwards.onnx", sklearn_onnx(backwards))
    version = judged["version"]
    assert version["status"] == "ready" and not version["promoted"], judged
    assert "does not beat the baseline" in version["reason"] and "challenger" in version["aliases"]

    # not a model at all: refused by the registry before anything is evaluated
    (tmp_path / "notes.onnx").write_text("not a model")
    refused = subprocess.run(
        [str(MILLRACE), "models", "upload", str(tmp_path / "notes.onnx"), "--name", "churn"]
        + ["--registry", registry, "--features-url", features],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused
    assert "notes.onnx is not a usable ONNX model" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
