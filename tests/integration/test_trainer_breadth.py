"""Done-when 4: each estimator family (scikit-learn's, XGBoost's and LightGBM's
classifiers and regressors) trains on the factory example through the real pipeline
(broker → trainer → S3 → registry on Postgres) into a ``ready`` version whose ONNX parity
check passed; a model whose ONNX output does not match is ``rejected`` with the reason,
and one that cannot be converted is a failed run with the reason."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from millrace_common.contracts import SnapshotRef, TrainRequest
from millrace_common.objectstore import ObjectStore
from millrace_trainer.runtime import Runtime

from tests.support.kafka import send_train_request
from tests.support.paths import FACTORY
from tests.support.training import registry_document, train_request

pytestmark = pytest.mark.integration

TRAIN_PY = '''
"""The project's own training code: functions returning scikit-learn estimators."""
import numpy as np
from skl2onnx import update_registered_converter
from skl2onnx.operator_converters.linear_classifier import convert_sklearn_linear_classifier
from skl2onnx.shape_calculators.linear_classifier import (
    calculate_linear_classifier_output_shapes)
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

CATEGORICAL = [6]  # readings_10m: a count of readings, a category of sensor health


def scaled_onehot(C=1.0):
    numeric = [0, 1, 2, 3, 4, 5]
    prepare = ColumnTransformer([("scale", StandardScaler(), numeric),
                                 ("onehot", OneHotEncoder(handle_unknown="ignore"),
                                  CATEGORICAL)])
    return Pipeline([("prepare", prepare), ("model", LogisticRegression(C=C, max_iter=500))])


class Overconfident(LogisticRegression):
    """Sharpens its probabilities after the fact; the ONNX converter cannot know."""

    def predict_proba(self, X):
        p = super().predict_proba(X) ** 3
        return p / p.sum(axis=1, keepdims=True)


update_registered_converter(Overconfident, "ProjectOverconfident",
                            calculate_linear_classifier_output_shapes,
                            convert_sklearn_linear_classifier,
                            options={"zipmap": [True, False, "columns"],
                                     "nocl": [True, False], "raw_scores": [True, False]})


def overconfident():
    return Overconfident(max_iter=500)


class Majority(ClassifierMixin, BaseEstimator):
    """No ONNX converter knows this one."""

    def fit(self, X, y):
        self.classes_, counts = np.unique(y, return_counts=True)
        self.majority_ = self.classes_[counts.argmax()]
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)


def majority():
    return Majority()
'''

FAMILIES: dict[str, dict[str, Any]] = {
    "logistic": {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"max_iter": 500},
    },
    "linear": {
        "estimator": "sklearn.linear_model.LinearRegression",
        "task": "regression",
        "metric": "rmse",
        "direction": "minimize",
    },
    "forest": {
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 30, "max_depth": 5},
    },
    "boosting": {
        "estimator": "sklearn.ensemble.GradientBoostingClassifier",
        "params": {"n_estimators": 30},
    },
    "hist-boosting": {
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"max_iter": 30},
    },
    "pipeline": {"estimator": "train.scaled_onehot", "params": {"C": 0.5}},
    "xgboost": {"estimator": "xgboost.XGBClassifier", "params": {"n_estimators": 40}},
    "lightgbm": {
        "estimator": "lightgbm.LGBMClassifier",
        "params": {"n_estimators": 40, "verbose": -1},
    },
    "xgboost-regressor": {
        "estimator": "xgboost.XGBRegressor",
        "params": {"n_estimators": 40},
        "task": "regression",
        "metric": "rmse",
        "direction": "minimize",
    },
    "lightgbm-regressor": {
        "estimator": "lightgbm.LGBMRegressor",
        "params": {"n_estimators": 40, "verbose": -1},
        "task": "regression",
        "metric": "rmse",
        "direction": "minimize",
    },
}
BROKEN = {
    "mismatch": {"estimator": "train.overconfident"},
    "unconvertible": {"estimator": "train.majority"},
}


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The factory example with one model per estimator family, and a train.py."""
    folder = tmp_path_factory.mktemp("factory-breadth")
    shutil.copy(FACTORY / "millrace.yaml", folder / "millrace.yaml")
    project = yaml.safe_load((folder / "millrace.yaml").read_text())
    for name, spec in (FAMILIES | BROKEN).items():
        project["models"][f"mf-{name}"] = {
            "feature_set": "machine_health",
            "seed": 11,
            "metric": "f1",
        } | spec
    (folder / "millrace.yaml").write_text(yaml.safe_dump(project))
    (folder / "train.py").write_text(TRAIN_PY)
    return folder


def request_for(model: str, ref: SnapshotRef) -> TrainRequest:
    request_id = f"breadth-{secrets.token_hex(4)}"
    return train_request(ref, request_id, model=model, reason="breadth test")


async def test_every_family_gives_a_ready_version_and_broken_ones_are_refused(
    trainer: Runtime, registry_url: str, broker: str, snapshot: tuple[ObjectStore, SnapshotRef]
) -> None:
    _, ref = snapshot
    for name in (*FAMILIES, *BROKEN):
        await send_train_request(broker, request_for(f"mf-{name}", ref))
    async with httpx.AsyncClient(base_url=registry_url, timeout=30) as client:
        for name in FAMILIES:
            [version] = await registry_document(
                registry_url,
                f"/v1/models/mf-{name}/versions",
            )
            checks = version["lineage"]["checks"]
            assert (version["status"], checks["passed"]) == ("ready", True), (name, checks)
            assert checks["warm_up"] == "ok" and checks["schema"] == "ok"
            assert version["aliases"] == ["champion", "production"], name
        pipeline = (await client.get("/v1/models/mf-pipeline/versions/1")).json()
        assert "OneHotEncoder" in str(pipeline["params"]) or pipeline["params"]["steps"]

        [rejected] = await registry_document(registry_url, "/v1/models/mf-mismatch/versions")
        assert rejected["status"] == "rejected" and rejected["aliases"] == []
        assert "ONNX probabilities differ" in rejected["rejection_reason"]
        assert (await client.get("/v1/models/mf-mismatch/aliases/production")).status_code == 404

        [failed] = await registry_document(
            registry_url,
            "/v1/models/mf-unconvertible/runs?status=failed",
        )
        assert "cannot convert Majority to ONNX" in failed["failure_reason"]
        assert (await client.get("/v1/models/mf-unconvertible/versions")).json() == []
        assert len(failed["failure_reason"]) < 400
