"""ONNX export: float32 ``input`` of shape [None, n_features]; classifiers give ``label``
and ``probabilities`` (no ZipMap), regressors ``variable``."""

from __future__ import annotations

from typing import Any

from millrace_common.contracts import ModelSchema
from millrace_common.scoring import describe_session, open_session
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType

from millrace_trainer.errors import TrainingError

INPUT_NAME = "input"


def export_onnx(*, estimator: Any, n_features: int, task: str) -> bytes:
    options = None
    if task == "classification":
        final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        options = {id(final): {"zipmap": False}}
    try:
        model = to_onnx(
            estimator,
            options=options,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
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
