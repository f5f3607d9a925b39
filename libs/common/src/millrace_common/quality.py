"""Quality metrics, one definition for every place that measures a model: the trainer
on a holdout (candidate, champion, baseline) and the registry's monitor on live
predictions whose labels arrived later. scikit-learn's (the ``quality`` extra)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import metrics as skm

LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})


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


def log_loss(y_true: np.ndarray, probabilities: np.ndarray, classes: list[int]) -> float:
    """The mean negative log-likelihood of the true classes (columns in ``classes``'
    order); NaN when a true class has no column."""
    if len(y_true) == 0 or probabilities.shape[1] != len(classes):
        return math.nan
    if not {int(v) for v in y_true} <= set(classes):
        return math.nan
    return float(skm.log_loss(y_true, probabilities, labels=classes))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    found = {
        "rmse": math.sqrt(skm.mean_squared_error(y_true, y_pred)),
        "mae": skm.mean_absolute_error(y_true, y_pred),
    }
    if len(y_true) >= 2:
        found["r2"] = skm.r2_score(y_true, y_pred)
    return found
