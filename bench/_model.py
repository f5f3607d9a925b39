"""The benchmark models: the factory classifier (7 features) fitted once, as ONNX for
Millrace and as a pickled scikit-learn estimator for MLServer — the same fitted model."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from millrace_common.contracts import ModelSchema
from millrace_common.scoring import describe_session, open_session

Kind = Literal["logistic", "forest", "mlp"]
MLP_LAYERS = (1024, 1024, 1024, 1024)
ROWS: dict[Kind, int] = {"logistic": 500, "forest": 5000, "mlp": 1000}
FEATURES = [
    "temperature_mean_10m",
    "temperature_max_10m",
    "vibration_mean_10m",
    "vibration_std_10m",
    "pressure_mean_10m",
    "speed_last",
    "readings_10m",
]


@dataclass(frozen=True)
class Fitted:
    estimator: Any
    onnx: bytes
    schema: ModelSchema


def fitted(seed: int, *, kind: Kind = "logistic") -> Fitted:
    """``logistic`` scores one row in a few µs, so a request is mostly HTTP and Python;
    ``forest`` (200 trees, depth 12, fitted on 5 000 rows) is a tabular model of
    realistic size, yet one row takes ~10 µs and every further row adds to it (trees
    are walked row by row), so batching has little to share; ``mlp`` (4 dense hidden
    layers of 1 024) is the kind of model adaptive batching is for: one 1-row call
    costs more than a request's HTTP work, and 32 rows cost only a few times one row,
    because a batch turns matrix-vector products into one matrix-matrix product. The
    MLP is fitted for a few iterations only (seconds): the bench needs its cost, not
    its accuracy."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    rows = ROWS[kind]
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + x[:, 2] + rng.normal(scale=0.3, size=rows) > 0).astype(np.int64)
    with warnings.catch_warnings():
        from sklearn.exceptions import ConvergenceWarning

        warnings.simplefilter("ignore", ConvergenceWarning)  # few iterations on purpose
        estimator = _estimator(kind).fit(x, y)
    onx = to_onnx(
        estimator,
        initial_types=[("input", FloatTensorType([None, len(FEATURES)]))],
        options={id(estimator): {"zipmap": False}},
        target_opset=17,
    )
    data = onx.SerializeToString()
    inputs, outputs = describe_session(open_session(data))
    return Fitted(
        estimator=estimator,
        onnx=data,
        schema=ModelSchema(
            features=FEATURES, inputs=inputs, outputs=outputs, task="classification"
        ),
    )


def _estimator(kind: Kind) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if kind == "mlp":
        return MLPClassifier(hidden_layer_sizes=MLP_LAYERS, max_iter=3, random_state=0)
    if kind == "forest":
        return RandomForestClassifier(n_estimators=200, max_depth=12, random_state=0, n_jobs=1)
    return LogisticRegression(max_iter=200)
