"""The benchmark model: the factory classifier (7 features) fitted once, as ONNX for
Millrace and as a pickled scikit-learn estimator for MLServer — the same fitted model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from millrace_common.contracts import ModelSchema
from millrace_common.scoring import describe_session, open_session

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


def fitted(seed: int) -> Fitted:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(500, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + x[:, 2] + rng.normal(scale=0.3, size=500) > 0).astype(np.int64)
    estimator = LogisticRegression(max_iter=200).fit(x, y)
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
