"""Holdout metrics, computed the same way for a candidate, for the champion and for the
baseline (the best trivial model)."""

from __future__ import annotations

from typing import Any

import numpy as np
from millrace_common.quality import LOWER_IS_BETTER, Predictions, evaluate
from sklearn.dummy import DummyClassifier, DummyRegressor

from millrace_trainer.dataset import Split


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
