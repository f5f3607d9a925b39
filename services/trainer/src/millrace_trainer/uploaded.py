"""An uploaded model judged like a trained one: on the holdout of a fresh snapshot of its
feature set, split by time as training splits it, through the scoring core serving uses.
Its checks: one float32 input as wide as the feature set, outputs the scoring core
answers (a label and class probabilities, or a value), a warm-up, and parity with the
sample predictions the uploader gave. A model that fails a check is a rejected candidate
with the reason; one that passes faces the baseline and the champion."""

from __future__ import annotations

from typing import Any

import numpy as np
from millrace_common.contracts import ModelSchema, TensorSpec
from millrace_common.errors import IntegrityError
from millrace_common.project import ModelSpec
from millrace_common.quality import Predictions, evaluate
from millrace_common.scoring import LoadedModel, describe_session, load_model, open_session

from millrace_trainer.checks import CheckReport, classification_parity, regression_parity
from millrace_trainer.dataset import Split
from millrace_trainer.evaluation import baseline_metrics
from millrace_trainer.pipeline import Candidate, Timings, data_of, load_split, predict

SAMPLES = "the uploaded sample predictions"
ZIPMAP_HINT = "convert it with the ZipMap disabled (skl2onnx/onnxmltools: zipmap=False)"


def evaluate_upload(
    *,
    name: str,
    spec: ModelSpec,
    features: list[str],
    snapshot: bytes,
    onnx: bytes,
    sha256: str,
    samples: dict[str, Any] | None,
) -> Candidate:
    timer = Timings()
    with timer("load"):
        rows, split = load_split(snapshot, spec=spec, features=features)
    classes = _classes(spec.task, split)
    report = CheckReport()
    with timer("checks"):
        schema, model = _open(
            name=name,
            onnx=onnx,
            sha256=sha256,
            spec=spec,
            features=features,
            classes=classes,
            report=report,
        )
        if model is not None and samples is not None:
            check_samples(model, samples, features=features, report=report)
    metrics: dict[str, float] = {}
    if model is not None:
        predictions = predict(model, split)
        if _answers_missing(predictions, split, report):
            metrics = evaluate(
                task=spec.task, y_true=split.y_holdout, predictions=predictions, classes=classes
            )
    return Candidate(
        estimator=None,
        onnx=onnx,
        schema=schema,
        split=split,
        classes=classes,
        metrics=metrics,
        baseline=baseline_metrics(task=spec.task, split=split, seed=spec.seed),
        checks=report,
        params={},
        data=data_of(rows, split),
        timings=timer.seconds,
    )


def _answers_missing(predictions: Predictions, split: Split, report: CheckReport) -> bool:
    """Whether the model answered every holdout row: one that gives NaN for the rows with a
    missing value (no imputer inside) is rejected, saying so."""
    answers = [predictions.values.astype(np.float64, copy=False)]
    if predictions.probabilities is not None:
        answers.append(np.asarray(predictions.probabilities, dtype=np.float64))
    rows = np.zeros(len(split.y_holdout), dtype=bool)
    for answer in answers:
        rows |= np.isnan(answer.reshape(len(rows), -1)).any(axis=1)
    unanswered = int(rows.sum())
    if not unanswered:
        return True
    gaps = int(np.isnan(split.x_holdout).any(axis=1).sum())
    report.fail(
        f"the model gives no answer (NaN) for {unanswered} holdout rows ({gaps} have a missing "
        "value): put an imputer inside it, as the trainer does"
    )
    return False


def _classes(task: str, split: Split) -> list[int] | None:
    if task != "classification":
        return None
    return sorted(int(c) for c in np.unique(np.concatenate([split.y_train, split.y_holdout])))


def _open(
    *,
    name: str,
    onnx: bytes,
    sha256: str,
    spec: ModelSpec,
    features: list[str],
    classes: list[int] | None,
    report: CheckReport,
) -> tuple[ModelSchema, LoadedModel | None]:
    """The schema the file's tensors give (none when it does not open: a rejected upload
    is recorded with it) and the model through the scoring core's loader, or None with
    the checks it failed."""
    try:
        inputs, outputs = describe_session(open_session(onnx))
    except IntegrityError as exc:
        report.fail(f"cannot be opened: {exc.message}")
        inputs, outputs = [], []
    schema = ModelSchema(features=features, inputs=inputs, outputs=outputs, task=spec.task)
    if not report.passed:
        return schema, None
    check_inputs(inputs, features=features, report=report)
    check_outputs(outputs, task=spec.task, classes=classes, report=report)
    if not report.passed:
        return schema, None
    try:
        model = load_model(name=name, version=0, data=onnx, sha256=sha256, schema=schema)
    except IntegrityError as exc:
        report.fail(f"load or warm-up failed: {exc.message}")
        return schema, None
    report.details["warm_up"] = "ok"
    return schema, model


def check_inputs(inputs: list[TensorSpec], *, features: list[str], report: CheckReport) -> None:
    """One float32 tensor of rows as wide as the feature set (or of any width)."""
    width = len(features)
    wanted = f"one float32 input of shape [N, {width}] (the {width} features {features})"
    if len(inputs) != 1:
        report.fail(f"the model has inputs {[i.name for i in inputs]}; it must have {wanted}")
        return
    tensor = inputs[0]
    shape_fits = len(tensor.shape) == 2 and tensor.shape[1] in (width, None)
    if tensor.dtype != "float32" or not shape_fits:
        report.fail(
            f"input '{tensor.name}' is {tensor.dtype} of shape {tensor.shape}; it must be {wanted}"
        )
    report.details["inputs"] = "ok" if report.passed else "failed"


def check_outputs(
    outputs: list[TensorSpec], *, task: str, classes: list[int] | None, report: CheckReport
) -> None:
    not_tensors = [o for o in outputs if not o.dtype.isidentifier() or o.dtype.startswith("seq")]
    if not_tensors:
        shown = ", ".join(f"'{o.name}' is {o.dtype}" for o in not_tensors)
        report.fail(f"outputs must be tensors: {shown}; {ZIPMAP_HINT}")
        return
    if task == "classification":
        if len(outputs) not in (1, 2):
            report.fail(
                f"a classifier gives a label and, optionally, class probabilities; this "
                f"model gives {[o.name for o in outputs]}"
            )
        elif len(outputs) == 2 and classes is not None:
            columns = outputs[1].shape[-1] if outputs[1].shape else None
            if columns is not None and columns != len(classes):
                report.fail(
                    f"output '{outputs[1].name}' has {columns} class probabilities; the "
                    f"label has {len(classes)} classes {classes}"
                )
    elif len(outputs) != 1:
        report.fail(
            f"a regressor gives a single value output; this model gives {[o.name for o in outputs]}"
        )
    report.details["outputs"] = "ok" if report.passed else "failed"


def check_samples(
    model: LoadedModel, samples: dict[str, Any], *, features: list[str], report: CheckReport
) -> None:
    """The uploaded file answers the sample rows as the uploader's own model did."""
    try:
        x = _sample_matrix(samples["rows"], features)
    except ValueError as exc:
        report.fail(f"sample rows: {exc}")
        return
    outputs = model.run(x)
    report.details["sample_rows"] = len(x)
    if model.schema.task == "regression":
        expected = np.asarray(samples["predictions"], dtype=np.float64)
        got = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        regression_parity(expected, got, report, against=SAMPLES)
        return
    proba = samples.get("probabilities")
    classification_parity(
        np.asarray(samples["predictions"]).astype(np.int64),
        None if proba is None else np.asarray(proba, dtype=np.float64),
        outputs,
        report,
        against=SAMPLES,
        rows="sample rows",
    )


def _sample_matrix(rows: list[Any], features: list[str]) -> np.ndarray:
    matrix = []
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            missing = [f for f in features if f not in row]
            if missing:
                raise ValueError(f"row {i} lacks {missing}")
            row = [row[f] for f in features]
        if len(row) != len(features):
            raise ValueError(f"row {i} has {len(row)} values, the feature set {len(features)}")
        matrix.append([np.nan if v is None else v for v in row])  # null: missing
    return np.asarray(matrix, dtype=np.float32)
