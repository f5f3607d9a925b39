"""One training run without I/O: split, fit, export, check, evaluate (and the champion)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from millrace_common.contracts import AliasTarget, ModelSchema
from millrace_common.errors import IntegrityError
from millrace_common.project import ModelSpec
from millrace_common.quality import Predictions, evaluate, from_outputs
from millrace_common.scoring import LoadedModel, load_model

from millrace_trainer.checks import CheckReport, run_checks
from millrace_trainer.dataset import Snapshot, Split, read_snapshot, time_split
from millrace_trainer.estimators import build_estimator, fit, fitted_params, imputing, labels_for
from millrace_trainer.evaluation import baseline_metrics
from millrace_trainer.export import export_onnx, schema_of


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = round(time.perf_counter() - started, 4)


@dataclass(frozen=True)
class Candidate:
    """A fitted, exported and checked model with its holdout metrics."""

    estimator: Any
    onnx: bytes
    schema: ModelSchema
    split: Split
    classes: list[int] | None
    metrics: dict[str, float]
    baseline: dict[str, float]  # the best trivial model's metrics on the same holdout
    checks: CheckReport
    params: dict[str, Any]
    data: dict[str, Any]
    timings: dict[str, float]


def train(
    *,
    name: str,
    spec: ModelSpec,
    features: list[str],
    snapshot: bytes,
    project_root: str | None = None,
) -> Candidate:
    timer = Timings()
    with timer("load"):
        rows, split = load_split(snapshot, spec=spec, features=features)
    with timer("fit"):
        estimator = build_estimator(spec=spec, project_root=project_root)
        if np.isnan(rows.x).any():  # missing values: imputed inside the exported model
            estimator = imputing(estimator)
        estimator = fit(
            estimator=estimator,
            x=split.x_train,
            y=split.y_train,
            task=spec.task,
        )
    with timer("export"):
        onnx = export_onnx(estimator=estimator, n_features=len(features), task=spec.task)
        schema = schema_of(onnx=onnx, features=features, task=spec.task)
    with timer("checks"):
        model, report = run_checks(
            name=name, estimator=estimator, onnx=onnx, schema=schema, x_holdout=split.x_holdout
        )
    classes = [int(c) for c in estimator.classes_] if spec.task == "classification" else None
    predictions = (
        predict(model, split) if model is not None else _estimator_predictions(estimator, split)
    )
    metrics = evaluate(
        task=spec.task, y_true=split.y_holdout, predictions=predictions, classes=classes
    )
    baseline = baseline_metrics(task=spec.task, split=split, seed=spec.seed)
    return Candidate(
        estimator=estimator,
        onnx=onnx,
        schema=schema,
        split=split,
        classes=classes,
        metrics=metrics,
        baseline=baseline,
        checks=report,
        params=fitted_params(estimator),
        data=data_of(rows, split),
        timings=timer.seconds,
    )


def load_split(snapshot: bytes, *, spec: ModelSpec, features: list[str]) -> tuple[Snapshot, Split]:
    """The snapshot's usable rows, labels typed for the task, split by time."""
    rows = read_snapshot(snapshot, features=features)
    rows = dataclasses.replace(rows, y=labels_for(spec.task, rows.y))
    return rows, time_split(rows, holdout_fraction=spec.holdout_fraction)


def data_of(rows: Snapshot, split: Split) -> dict[str, Any]:
    """What the lineage records of the rows a version was judged on."""
    return {
        "rows_used": rows.rows,
        "rows_dropped": rows.dropped,
        "train_rows": len(split.y_train),
        "holdout_rows": len(split.y_holdout),
        "holdout_from": split.holdout_from,
    }


def predict(model: LoadedModel, split: Split) -> Predictions:
    """The holdout through the scoring core, exactly as serving will answer."""
    return from_outputs(model.schema.task, model.predict(split.x_holdout32))


def _estimator_predictions(estimator: Any, split: Split) -> Predictions:
    x = split.x_holdout32
    proba = estimator.predict_proba(x) if hasattr(estimator, "predict_proba") else None
    return Predictions(np.asarray(estimator.predict(x)), proba)


@dataclass(frozen=True)
class ChampionResult:
    version: int
    metrics: dict[str, float] | None
    note: str


def evaluate_champion(*, target: AliasTarget, data: bytes, candidate: Candidate) -> ChampionResult:
    """The production model's metrics on the candidate's holdout (None if not comparable)."""
    features = candidate.schema.features
    if target.model_schema.features != features:
        return ChampionResult(
            target.version,
            None,
            f"champion v{target.version} takes "
            f"features {target.model_schema.features}, not {features}",
        )
    try:
        model = load_model(
            name=target.name,
            version=target.version,
            data=data,
            sha256=target.sha256,
            schema=target.model_schema,
        )
    except IntegrityError as exc:
        return ChampionResult(
            target.version, None, f"champion v{target.version} unusable: {exc.message}"
        )
    metrics = evaluate(
        task=candidate.schema.task,
        y_true=candidate.split.y_holdout,
        predictions=predict(model, candidate.split),
        classes=candidate.classes,
    )
    return ChampionResult(target.version, metrics, "evaluated on the same holdout")
