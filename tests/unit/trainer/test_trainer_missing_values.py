"""Missing feature values stay missing: a snapshot's null becomes NaN, the trainer fits the
spec's estimator behind a median imputer, and both go into the exported ONNX model, so
serving and the sites answer a null feature the way training saw it."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from millrace_common.errors import InvalidInput
from millrace_common.objectstore import sha256_hex
from millrace_common.project import ModelSpec
from millrace_common.scoring import load_model, matrix_from_instances, refuse_unanswered_missing
from millrace_trainer.pipeline import train

from tests.support.models import FACTORY_FEATURES, fit
from tests.support.snapshots import factory_snapshot


def with_gaps(data: bytes, name: str, every: int) -> bytes:
    table = pq.read_table(io.BytesIO(data))
    values = table.column(name).to_pylist()
    gapped = [None if i % every == 0 else v for i, v in enumerate(values)]
    table = table.set_column(table.schema.get_field_index(name), name, pa.array(gapped))
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


@pytest.mark.parametrize(
    "estimator",
    ["sklearn.ensemble.RandomForestClassifier", "sklearn.linear_model.LogisticRegression"],
)
def test_a_model_trained_with_gaps_imputes_them_inside_its_onnx(estimator: str) -> None:
    snapshot = with_gaps(factory_snapshot(600), "temperature_mean_10m", every=7)
    spec = ModelSpec(feature_set="machine_health", estimator=estimator, params={"max_iter": 500}
                     if "Logistic" in estimator else {"n_estimators": 30})  # fmt: skip
    candidate = train(name="m", spec=spec, features=list(FACTORY_FEATURES), snapshot=snapshot)
    assert candidate.checks.passed, candidate.checks.failures
    assert candidate.data["rows_used"] == 600  # no row dropped for a missing value
    assert "impute" not in str(candidate.params)  # the spec's own parameters are recorded
    model = load_model(
        name="m", version=1, data=candidate.onnx, sha256=sha256_hex(candidate.onnx),
        schema=candidate.schema,
    )  # fmt: skip
    row = dict.fromkeys(FACTORY_FEATURES, 1.0) | {"temperature_mean_10m": None}
    matrix = matrix_from_instances(model.schema, [row])
    assert np.isnan(matrix[0, 0])
    outputs = model.run(matrix)
    refuse_unanswered_missing(model.schema.features, matrix, outputs)  # answered: no error
    assert np.isfinite(np.asarray(outputs[1])).all()


def test_a_model_without_imputation_gets_a_422_for_a_null_never_a_null_answer() -> None:
    artifact = fit(seed=1)  # a bare logistic regression exported by hand
    model = load_model(
        name="m", version=1, data=artifact.data, sha256=sha256_hex(artifact.data),
        schema=artifact.schema,
    )  # fmt: skip
    rows = [dict.fromkeys(FACTORY_FEATURES, 1.0), dict.fromkeys(FACTORY_FEATURES, 1.0)]
    rows[1]["speed_last"] = None
    matrix = matrix_from_instances(model.schema, rows)
    with pytest.raises(InvalidInput) as refused:
        refuse_unanswered_missing(model.schema.features, matrix, model.run(matrix))
    assert refused.value.field == "instances[1].speed_last"
    assert "gives no answer for a missing value" in refused.value.message


def test_an_upload_that_cannot_answer_a_missing_value_is_rejected_saying_so() -> None:
    from millrace_trainer.uploaded import evaluate_upload

    snapshot = with_gaps(factory_snapshot(600), "temperature_mean_10m", every=5)
    artifact = fit(seed=1)  # a bare logistic regression: NaN in, NaN out
    spec = ModelSpec(feature_set="machine_health", estimator="uploaded")
    candidate = evaluate_upload(
        name="m", spec=spec, features=list(FACTORY_FEATURES), snapshot=snapshot,
        onnx=artifact.data, sha256=sha256_hex(artifact.data), samples=None,
    )  # fmt: skip
    assert not candidate.checks.passed and candidate.metrics == {}
    assert "gives no answer (NaN)" in candidate.checks.reason
    assert "put an imputer inside it" in candidate.checks.reason
