"""ONNX export: float32 ``input`` of shape [None, n_features]; classifiers give ``label``
and ``probabilities`` (no ZipMap), regressors ``variable``."""

from __future__ import annotations

from typing import Any

from lightgbm import LGBMClassifier, LGBMRegressor
from millrace_common.contracts import ModelSchema
from millrace_common.scoring import describe_session, open_session
from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
from skl2onnx import get_latest_tested_opset_version, to_onnx, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType
from skl2onnx.common.shape_calculator import (
    calculate_linear_classifier_output_shapes,
    calculate_linear_regressor_output_shapes,
)
from xgboost import XGBClassifier, XGBRegressor

from millrace_trainer.errors import TrainingError

INPUT_NAME = "input"

# XGBoost's and LightGBM's scikit-learn estimators, alone or last in a pipeline, convert
# like scikit-learn's own, with onnxmltools' converters (the skl2onnx recipe)
_BOOSTERS = (XGBClassifier, XGBRegressor, LGBMClassifier, LGBMRegressor)
_CLASSIFIER_OPTIONS = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
for _estimator, _alias, _converter in (
    (XGBClassifier, "XGBoostXGBClassifier", convert_xgboost),
    (LGBMClassifier, "LightGbmLGBMClassifier", convert_lightgbm),
):
    update_registered_converter(
        _estimator,
        _alias,
        calculate_linear_classifier_output_shapes,
        _converter,
        options=_CLASSIFIER_OPTIONS,
    )
for _estimator, _alias, _converter in (
    (XGBRegressor, "XGBoostXGBRegressor", convert_xgboost),
    (LGBMRegressor, "LightGbmLGBMRegressor", convert_lightgbm),
):
    update_registered_converter(
        _estimator, _alias, calculate_linear_regressor_output_shapes, _converter
    )


def export_onnx(*, estimator: Any, n_features: int, task: str) -> bytes:
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    options = {id(final): {"zipmap": False}} if task == "classification" else None
    # onnxmltools' tree converters write ai.onnx.ml opset 3 at most
    boosted = isinstance(final, _BOOSTERS)
    target_opset = {"": get_latest_tested_opset_version(), "ai.onnx.ml": 3} if boosted else None
    try:
        model = to_onnx(
            estimator,
            options=options,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            target_opset=target_opset,
        )
    except Exception as exc:  # noqa: BLE001 - skl2onnx raises many unrelated types
        # skl2onnx messages can dump whole tree ensembles: keep the first line, bounded
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise TrainingError(f"cannot convert {type(estimator).__name__} to ONNX: {cause}") from None
    return model.SerializeToString()


def schema_of(*, onnx: bytes, features: list[str], task: str) -> ModelSchema:
    """What the exported model takes and gives, read back from an ONNX session."""
    inputs, outputs = describe_session(open_session(onnx))
    return ModelSchema(features=features, inputs=inputs, outputs=outputs, task=task)  # type: ignore[arg-type]
