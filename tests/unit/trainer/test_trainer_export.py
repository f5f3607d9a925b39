"""ONNX export and the introspection checks (schema, warm-up, parity with the fitted model)."""

from __future__ import annotations

import numpy as np
from millrace_common.project import ModelSpec
from millrace_trainer.checks import run_checks
from millrace_trainer.estimators import build_estimator
from millrace_trainer.export import export_onnx, schema_of

FEATURES = ["f0", "f1", "f2"]


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 3))
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)


def fitted(
    estimator: str, params: dict[str, object], *, task: str = "classification", seed: int = 0
) -> object:
    spec = ModelSpec(feature_set="fs", estimator=estimator, params=params, task=task, seed=seed)
    x, y = data(seed)
    target = y if task == "classification" else x @ np.array([2.0, -1.0, 0.5]) + 3.0
    return build_estimator(spec=spec).fit(x.astype(np.float32), target)


def test_classifier_exports_label_and_probabilities_that_match() -> None:
    model = fitted("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20})
    onnx = export_onnx(estimator=model, n_features=3, task="classification")
    schema = schema_of(onnx=onnx, features=FEATURES, task="classification")
    assert [o.name for o in schema.outputs] == ["label", "probabilities"]
    assert schema.inputs[0].name == "input" and schema.inputs[0].shape == [None, 3]
    loaded, report = run_checks(
        name="m", estimator=model, onnx=onnx, schema=schema, x_holdout=data(1)[0]
    )
    assert report.passed, report.reason
    assert loaded is not None and report.details["label_mismatches"] == 0
    assert report.details["max_probability_diff"] <= 1e-4


def test_regressor_export_matches_within_relative_tolerance() -> None:
    model = fitted("sklearn.linear_model.Ridge", {"alpha": 0.1}, task="regression")
    onnx = export_onnx(estimator=model, n_features=3, task="regression")
    schema = schema_of(onnx=onnx, features=FEATURES, task="regression")
    _, report = run_checks(
        name="m", estimator=model, onnx=onnx, schema=schema, x_holdout=data(2)[0]
    )
    assert report.passed, report.reason
    assert report.details["max_relative_error"] <= 1e-4


def test_parity_fails_when_the_onnx_model_is_not_the_fitted_one() -> None:
    exported = fitted("sklearn.linear_model.LogisticRegression", {"C": 0.001}, seed=0)
    other = fitted("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 5}, seed=5)
    onnx = export_onnx(estimator=exported, n_features=3, task="classification")
    schema = schema_of(onnx=onnx, features=FEATURES, task="classification")
    _, report = run_checks(
        name="m", estimator=other, onnx=onnx, schema=schema, x_holdout=data(3)[0]
    )
    assert not report.passed
    assert "ONNX probabilities differ" in report.reason


def test_schema_check_fails_on_a_feature_count_mismatch() -> None:
    model = fitted("sklearn.linear_model.LogisticRegression", {})
    onnx = export_onnx(estimator=model, n_features=3, task="classification")
    schema = schema_of(onnx=onnx, features=["only", "two"], task="classification")
    loaded, report = run_checks(
        name="m", estimator=model, onnx=onnx, schema=schema, x_holdout=data(1)[0]
    )
    assert not report.passed and loaded is None
    assert any("input is" in failure for failure in report.failures)


def test_seed_becomes_random_state_unless_params_set_it() -> None:
    seeded = build_estimator(
        spec=ModelSpec(
            feature_set="fs", estimator="sklearn.ensemble.RandomForestClassifier", seed=11
        )
    )
    assert seeded.get_params()["random_state"] == 11
    explicit = build_estimator(
        spec=ModelSpec(
            feature_set="fs",
            estimator="sklearn.ensemble.RandomForestClassifier",
            seed=11,
            params={"random_state": 3},
        )
    )
    assert explicit.get_params()["random_state"] == 3
