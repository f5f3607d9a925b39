"""The churn project from Python, the way a data scientist works in a notebook, against a
platform started with ``millrace up --project examples/churn`` (``MILLRACE_TOKEN`` set
to the key it printed):

    python examples/client/churn_notebook.py examples/churn/customers.csv

1. send the customers' weekly records (a DataFrame) to the platform;
2. get a training frame: each record's features as they were known at its own time;
3. fit a scikit-learn pipeline of your own, recording the run (params, metrics, a file);
4. upload it (ONNX, with sample predictions): the platform evaluates it on its holdout;
5. promote it and ask serving for predictions, by customer id and by feature values.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from millrace import Client
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import classification_report, f1_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURE_SET, MODEL = "customer_profile", "churn"


def training_frame(client: Client, records: pd.DataFrame, timeout: float = 300) -> pd.DataFrame:
    """Every record's features as of its time, once the stream has computed them all (a
    record whose own row is not in yet is answered by the customer's row before it)."""
    entities = records[["customer_id", "as_of"]]
    deadline = time.monotonic() + timeout
    while True:
        frame = client.training_frame(
            FEATURE_SET, entities, entity_column="customer_id", time_column="as_of"
        )
        own_rows = (frame["event_time"] == pd.to_datetime(frame["as_of"], utc=True)).all()
        if own_rows or time.monotonic() > deadline:
            return frame
        time.sleep(2)


def main(data: Path) -> None:
    client = Client()
    records = pd.read_csv(data, parse_dates=["as_of"])
    print(f"sent {client.send('customers', records)} records")

    frame = training_frame(client, records)
    own = frame["event_time"] == pd.to_datetime(frame["as_of"], utc=True)
    if not own.all():
        raise SystemExit(f"{int((~own).sum())} records have no feature row of their own yet")
    print(f"training frame: {len(frame)} rows, each as of its own time")
    features, label = frame.attrs["features"], frame.attrs["label"]
    frame = frame.sort_values("as_of", kind="stable")
    cut = int(len(frame) * 0.8)
    train, holdout = frame.iloc[:cut], frame.iloc[cut:]
    x, x_holdout = train[features].to_numpy("float32"), holdout[features].to_numpy("float32")

    params = {"C": 0.5, "max_iter": 1000}
    with client.run(MODEL, params=params) as run:
        # a ratio over no calls is missing: impute it inside the model, as the trainer does
        model = make_pipeline(
            SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(**params)
        )
        model.fit(x, train[label].astype(int))
        proba = model.predict_proba(x_holdout)[:, 1]
        run.log_metrics(
            f1=f1_score(holdout[label].astype(int), model.predict(x_holdout)),
            roc_auc=roc_auc_score(holdout[label].astype(int), proba),
        )
        with tempfile.TemporaryDirectory() as folder:
            report = Path(folder) / "holdout-report.txt"
            report.write_text(classification_report(holdout[label], model.predict(x_holdout)))
            run.log_artifact(report)
    print(f"run {run.run_id}: roc_auc {run.metrics['roc_auc']:.3f}, f1 {run.metrics['f1']:.3f}")

    onnx = to_onnx(
        model,
        initial_types=[("input", FloatTensorType([None, len(features)]))],
        options={"zipmap": False},
        target_opset=17,
    )
    samples = {
        "rows": x_holdout[:20],
        "predictions": model.predict(x_holdout[:20]),
        "probabilities": model.predict_proba(x_holdout[:20]),
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "churn-logistic.onnx"
        path.write_bytes(onnx.SerializeToString())
        version = client.upload(MODEL, path, samples=samples, description="notebook logistic")
    print(
        f"uploaded as v{version['version']}: {version['status']}, "
        f"roc_auc {version['metrics'].get('roc_auc', float('nan')):.3f}; {version['reason']}"
    )
    if version["status"] != "ready":
        raise SystemExit(f"rejected: {version['rejection_reason']}")
    if "production" not in version["aliases"]:
        client.promote(MODEL, version["version"], reason="the notebook's logistic model")
    client.wait_served(MODEL, version["version"])
    print(f"v{version['version']} is in production")

    by_id = client.predict(MODEL, entity_ids=["c-0007", "c-0121"])
    by_values = client.predict(MODEL, holdout[features].head(2))
    for answer in (*by_id, *by_values):
        print(f"v{answer['served_by']['version']}: label {answer['label']}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
