"""Model introspection checks: schema, warm-up (the scoring core's loader) and parity
between the exported ONNX model and the fitted estimator on the holdout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from millrace_common.contracts import ModelSchema, TensorSpec
from millrace_common.errors import IntegrityError
from millrace_common.objectstore import sha256_hex
from millrace_common.scoring import LoadedModel, load_model

from millrace_trainer.export import INPUT_NAME

PROBABILITY_TOLERANCE = 1e-4
RELATIVE_TOLERANCE = 1e-4


@dataclass
class CheckReport:
    passed: bool = True
    failures: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.passed = False
        self.failures.append(reason)

    @property
    def reason(self) -> str:
        return "; ".join(self.failures)


def run_checks(
    *, name: str, estimator: Any, onnx: bytes, schema: ModelSchema, x_holdout: np.ndarray
) -> tuple[LoadedModel | None, CheckReport]:
    """All checks; the loaded model is returned when it opened and warmed up."""
    report = CheckReport()
    check_schema(schema, report=report)
    try:
        model = load_model(name=name, version=0, data=onnx, sha256=sha256_hex(onnx), schema=schema)
    except IntegrityError as exc:
        report.fail(f"load or warm-up failed: {exc.message}")
        return None, report
    report.details["warm_up"] = "ok"
    check_parity(estimator=estimator, model=model, x=x_holdout.astype(np.float32), report=report)
    return model, report


def check_schema(schema: ModelSchema, *, report: CheckReport) -> None:
    expected = TensorSpec(name=INPUT_NAME, dtype="float32", shape=[None, len(schema.features)])
    if schema.inputs != [expected]:
        report.fail(f"input is {schema.inputs}, expected [{expected}]")
    names = [o.name for o in schema.outputs]
    if schema.task == "classification" and names not in (["label", "probabilities"], ["label"]):
        report.fail(f"outputs are {names}, expected ['label', 'probabilities']")
    if schema.task == "regression" and len(names) != 1:
        report.fail(f"outputs are {names}, expected a single value output")
    report.details["schema"] = "ok" if report.passed else "failed"


def check_parity(*, estimator: Any, model: LoadedModel, x: np.ndarray, report: CheckReport) -> None:
    outputs = model.session.run(None, {INPUT_NAME: x})
    if model.schema.task == "regression":
        regression_parity(
            np.asarray(estimator.predict(x)).reshape(-1), np.asarray(outputs[0]).reshape(-1), report
        )
    else:
        proba = estimator.predict_proba(x) if hasattr(estimator, "predict_proba") else None
        classification_parity(np.asarray(estimator.predict(x)), proba, outputs, report)


def regression_parity(
    expected: np.ndarray, got: np.ndarray, report: CheckReport, *, against: str = "the fitted model"
) -> None:
    error = np.abs(got - expected) / np.maximum(np.abs(expected), 1.0)
    worst = float(error.max(initial=0.0))
    report.details["max_relative_error"] = worst
    if worst > RELATIVE_TOLERANCE:
        report.fail(
            f"ONNX values differ from {against} by up to {worst:.2e} "
            f"(relative), tolerance {RELATIVE_TOLERANCE:.0e}"
        )


def classification_parity(
    labels: np.ndarray,
    proba: np.ndarray | None,
    outputs: list[Any],
    report: CheckReport,
    *,
    against: str = "the fitted model",
    rows: str = "holdout rows",
) -> None:
    onnx_labels = np.asarray(outputs[0]).reshape(-1)
    differ = onnx_labels != labels
    if proba is not None and len(outputs) > 1:
        diff = float(np.abs(np.asarray(outputs[1]) - proba).max(initial=0.0))
        report.details["max_probability_diff"] = diff
        if diff > PROBABILITY_TOLERANCE:
            report.fail(
                f"ONNX probabilities differ from {against} by up to {diff:.2e}, "
                f"tolerance {PROBABILITY_TOLERANCE:.0e}"
            )
        differ &= ~_ties(proba)
    mismatches = int(differ.sum())
    report.details["label_mismatches"] = mismatches
    if mismatches:
        report.fail(f"ONNX labels differ from {against} on {mismatches} {rows}")


def _ties(proba: np.ndarray) -> np.ndarray:
    """Rows whose two best classes are within tolerance: either label is a right answer."""
    if proba.shape[1] < 2:
        return np.zeros(len(proba), dtype=bool)
    top = np.sort(proba, axis=1)[:, -2:]
    return (top[:, 1] - top[:, 0]) <= PROBABILITY_TOLERANCE
