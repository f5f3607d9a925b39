"""Holdout metrics: the same numbers for a candidate and for the champion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from millrace_common.quality import Predictions, evaluate, from_outputs
from millrace_trainer.dataset import Split
from millrace_trainer.evaluation import baseline_metrics


def test_binary_classification_metrics() -> None:
    y_true = np.array([1, 1, 0, 0, 1])
    predictions = Predictions(
        np.array([1, 0, 0, 1, 1]),
        np.array([[0.1, 0.9], [0.6, 0.4], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8]]),
    )
    found = evaluate(task="classification", y_true=y_true, predictions=predictions, classes=[0, 1])
    assert found["accuracy"] == pytest.approx(0.6)
    assert found["precision"] == pytest.approx(2 / 3)
    assert found["recall"] == pytest.approx(2 / 3)
    assert found["f1"] == pytest.approx(2 / 3)
    assert found["roc_auc"] == pytest.approx(5 / 6)


def test_roc_auc_is_left_out_when_the_holdout_has_one_class() -> None:
    found = evaluate(
        task="classification",
        y_true=np.array([0, 0, 0]),
        predictions=Predictions(
            np.array([0, 1, 0]), np.array([[0.9, 0.1], [0.4, 0.6], [0.8, 0.2]])
        ),
        classes=[0, 1],
    )
    assert "roc_auc" not in found
    assert found["f1"] == 0.0 and found["accuracy"] == pytest.approx(2 / 3)


def test_regression_metrics() -> None:
    found = evaluate(
        task="regression",
        y_true=np.array([1.0, 2.0, 3.0]),
        predictions=Predictions(np.array([1.0, 2.0, 5.0])),
    )
    assert found["mae"] == pytest.approx(2 / 3)
    assert found["rmse"] == pytest.approx(math.sqrt(4 / 3))
    assert found["r2"] == pytest.approx(1 - 4 / 2)


def test_scoring_core_outputs_become_predictions() -> None:
    outputs = [{"label": 1, "probabilities": [0.2, 0.8]}, {"label": 0, "probabilities": [0.7, 0.3]}]
    predictions = from_outputs("classification", outputs)
    assert predictions.values.tolist() == [1, 0]
    assert predictions.probabilities is not None
    assert predictions.probabilities[:, 1].tolist() == [0.8, 0.3]
    assert from_outputs("regression", [{"value": 2.5}]).values.tolist() == [2.5]


def split(x: np.ndarray, y: np.ndarray) -> Split:
    """The first 300 rows to train on, the rest the holdout."""
    return Split(x[:300], y[:300], x[300:], y[300:], holdout_from="row 300")


def test_the_baseline_is_each_metric_at_its_best_over_trivial_models() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 3))
    y = (rng.random(400) < 0.2).astype(np.int64)  # a fifth positive, unrelated to x
    found = baseline_metrics(task="classification", split=split(x, y), seed=7)
    assert found["roc_auc"] == pytest.approx(0.5)  # the prior's probabilities rank nothing
    assert found["accuracy"] == pytest.approx(float(np.mean(y[300:] == 0)))  # all negative
    assert 0.0 < found["f1"] < 0.5  # the guess at the prior finds some positives by chance
    values = rng.normal(10.0, 2.0, size=400)
    regression = baseline_metrics(task="regression", split=split(x, values), seed=7)
    mean_rmse = float(np.sqrt(np.mean((values[300:] - values[:300].mean()) ** 2)))
    assert regression["rmse"] <= mean_rmse + 1e-12 and regression["r2"] <= 0.01
