"""Holdout metrics, computed the same way for a candidate, for the champion and for the
baseline (the best trivial model)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier, DummyRegressor

from millrace_trainer.dataset import Split

LOWER_IS_BETTER = frozenset({"rmse", "mae"})


@dataclass(frozen=True)
class Predictions:
    """Labels (classification) or values (regression), and class probabilities if any."""

    values: np.ndarray
    probabilities: np.ndarray | None = None


def from_outputs(task: str, outputs: list[dict[str, Any]]) -> Predictions:
    """Predictions from the scoring core's formatted outputs (serving's own view)."""
    if task == "regression":
        return Predictions(np.array([row["value"] for row in outputs], dtype=np.float64))
    labels = np.array([row["label"] for row in outputs])
    has_proba = bool(outputs) and "probabilities" in outputs[0]
    proba = np.array([row["probabilities"] for row in outputs]) if has_proba else None
    return Predictions(labels, proba)


def evaluate(
    *, task: str, y_true: np.ndarray, predictions: Predictions, classes: list[int] | None = None
) -> dict[str, float]:
    """The task's metrics; undefined ones (e.g. roc_auc on one class) are left out."""
    if task == "regression":
        found = regression_metrics(y_true, predictions.values)
    else:
        found = classification_metrics(y_true, predictions, classes or [])
    return {name: float(value) for name, value in found.items() if math.isfinite(value)}


def baseline_metrics(*, task: str, split: Split, seed: int) -> dict[str, float]:
    """Each metric at its best over trivial models fitted on the same training rows and
    scored on the same holdout: for classification the most frequent class (with the
    class prior as its probabilities) and a guess drawn at the class prior; for
    regression the mean and the median. A model worth serving beats all of them."""
    dummies: list[Any] = (
        [DummyRegressor(strategy="mean"), DummyRegressor(strategy="median")]
        if task == "regression"
        else [
            DummyClassifier(strategy="prior"),
            DummyClassifier(strategy="stratified", random_state=seed),
        ]
    )
    best: dict[str, float] = {}
    for dummy in dummies:
        dummy.fit(split.x_train, split.y_train)
        proba = dummy.predict_proba(split.x_holdout) if task != "regression" else None
        found = evaluate(
            task=task,
            y_true=split.y_holdout,
            predictions=Predictions(np.asarray(dummy.predict(split.x_holdout)), proba),
            classes=[int(c) for c in getattr(dummy, "classes_", [])],
        )
        for name, value in found.items():
            better = min if name in LOWER_IS_BETTER else max
            best[name] = better(best.get(name, value), value)
    return best


def classification_metrics(
    y_true: np.ndarray, predictions: Predictions, classes: list[int]
) -> dict[str, float]:
    labels = sorted(set(classes) | {int(v) for v in y_true})
    binary = len(labels) == 2
    kwargs: dict[str, Any] = (
        {"average": "binary", "pos_label": labels[1]}
        if binary
        else {"average": "macro", "labels": labels}
    )
    y_pred = predictions.values.astype(np.int64)
    found = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "f1": skm.f1_score(y_true, y_pred, zero_division=0, **kwargs),
        "precision": skm.precision_score(y_true, y_pred, zero_division=0, **kwargs),
        "recall": skm.recall_score(y_true, y_pred, zero_division=0, **kwargs),
    }
    proba = predictions.probabilities
    if binary and proba is not None and proba.shape[1] == 2 and len(set(y_true)) == 2:
        found["roc_auc"] = skm.roc_auc_score(y_true == labels[1], proba[:, 1])
    return found


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    found = {
        "rmse": math.sqrt(skm.mean_squared_error(y_true, y_pred)),
        "mae": skm.mean_absolute_error(y_true, y_pred),
    }
    if len(y_true) >= 2:
        found["r2"] = skm.r2_score(y_true, y_pred)
    return found
