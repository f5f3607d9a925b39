"""Build and fit the estimator a model spec names."""

from __future__ import annotations

import importlib
import inspect
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from millrace_common.project import ModelSpec

from millrace_trainer.errors import TrainingError


def build_estimator(*, spec: ModelSpec, project_root: str | None = None) -> Any:
    """``estimator`` is an import path: a class (called with ``params``) or a function in the
    project's own code (e.g. ``train.build``) returning an estimator. ``random_state`` is set
    to the spec's seed when the estimator has one and the params do not set it."""
    factory = _resolve(spec.estimator, project_root=project_root)
    try:
        estimator = factory(**spec.params)
    except TypeError as exc:
        raise TrainingError(f"cannot build {spec.estimator}: {exc}", field="params") from None
    if not hasattr(estimator, "fit") or not hasattr(estimator, "get_params"):
        raise TrainingError(
            f"{spec.estimator} did not give a scikit-learn estimator", field="estimator"
        )
    if "random_state" in estimator.get_params() and "random_state" not in spec.params:
        estimator.set_params(random_state=spec.seed)
    return estimator


NATIVE_MISSING = ("XGB", "LGBM", "HistGradientBoosting")
"""Estimators that take a missing value as one (their trees learn where it goes)."""


def imputing(estimator: Any) -> Any:
    """``estimator`` behind a median imputer, both inside the exported model, so a missing
    feature (an empty window's mean, a first event's time since the last one) is imputed
    the same way in training, serving and at the sites; estimators that handle missing
    values themselves are left as they are. Added only when the snapshot has a missing
    value (skl2onnx cannot convert an imputer before a ColumnTransformer)."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if type(final).__name__.startswith(NATIVE_MISSING):
        return estimator
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    impute = SimpleImputer(strategy="median", keep_empty_features=True)
    return Pipeline([("impute", impute), ("model", estimator)])


def fitted_params(estimator: Any) -> dict[str, Any]:
    """The parameters of the spec's estimator, without the imputer ``imputing`` added."""
    steps = getattr(estimator, "steps", None)
    if steps and steps[0][0] == "impute" and len(steps) == 2:
        return jsonable_params(steps[1][1])
    return jsonable_params(estimator)


def _resolve(path: str, *, project_root: str | None) -> Any:
    module_name, _, attribute = path.rpartition(".")
    if not module_name:
        raise TrainingError(f"estimator '{path}' is not an import path", field="estimator")
    try:
        with _importable(project_root):
            module = importlib.import_module(module_name)
        found = getattr(module, attribute)
    except (ImportError, AttributeError) as exc:
        raise TrainingError(f"cannot import estimator '{path}': {exc}", field="estimator") from None
    if not callable(found) or inspect.ismodule(found):
        raise TrainingError(f"estimator '{path}' is not callable", field="estimator")
    return found


@contextmanager
def _importable(folder: str | None) -> Iterator[None]:
    """The project folder's own modules (``train.py``) are importable while resolving."""
    if folder is None or folder in sys.path:
        yield
        return
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path.remove(folder)


def labels_for(task: str, y: np.ndarray) -> np.ndarray:
    """Classification labels as int64 (ONNX label outputs are integers); values otherwise."""
    if task == "regression":
        return y.astype(np.float64)
    if not np.all(np.equal(np.mod(y, 1), 0)):
        raise TrainingError("classification labels must be whole numbers", field="label")
    return y.astype(np.int64)


def fit(*, estimator: Any, x: np.ndarray, y: np.ndarray, task: str) -> Any:
    if task == "classification" and len(np.unique(y)) < 2:
        raise TrainingError(
            "the training rows hold a single class; at least two are needed", field="label"
        )
    try:
        return estimator.fit(x.astype(np.float32), y)
    except ValueError as exc:
        raise TrainingError(f"fit failed: {exc}") from None


def jsonable_params(estimator: Any) -> dict[str, Any]:
    """The estimator's own parameters, with anything JSON cannot hold shown as text (an
    object, or a float that is not finite: XGBoost's ``missing`` is NaN)."""
    params = estimator.get_params(deep=False)
    return {key: _jsonable(value) for key, value in sorted(params.items())}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
