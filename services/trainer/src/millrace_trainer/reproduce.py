"""Retrain a registered version from its recorded lineage and compare the result.

The snapshot is fetched by its recorded uri and verified against its recorded sha256; the
recorded model spec (not today's project file) is fitted with the recorded seed; metrics
are compared with the recorded ones, and the original and reproduced ONNX models are run
side by side on the holdout. Library versions that differ from the recorded environment
are reported, because they are the usual reason a reproduction drifts."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from millrace_common.contracts import ModelSchema
from millrace_common.errors import InvalidInput
from millrace_common.objectstore import ObjectStore, get_verified, key_of, sha256_hex
from millrace_common.project import ModelSpec
from millrace_common.quality import from_outputs
from millrace_common.scoring import load_model

from millrace_trainer.checks import PROBABILITY_TOLERANCE, RELATIVE_TOLERANCE
from millrace_trainer.lineage import environment, find_lock_file
from millrace_trainer.pipeline import Candidate, train

Progress = Callable[[str], None]


def reproduce(
    *,
    version: dict[str, Any],
    store: ObjectStore,
    project_root: str | None = None,
    lock_file: str | None = None,
    progress: Progress = lambda _step: None,
) -> dict[str, Any]:
    """A side-by-side report; ``reproduced`` is true when metrics are equal and the ONNX
    outputs agree within tolerance on every holdout row."""
    record = version.get("lineage") or {}
    snapshot_ref, spec, features = _recorded(record)
    root = project_root or (record.get("project") or {}).get("root")
    progress("downloading the snapshot and checking its sha256")
    snapshot = get_verified(store, key_of(snapshot_ref["uri"]), snapshot_ref["sha256"])
    progress(f"retraining {spec.estimator} with seed {spec.seed}")
    candidate = train(
        name=version["name"], spec=spec, features=features, snapshot=snapshot, project_root=root
    )
    progress("comparing ONNX outputs on the holdout")
    original = get_verified(store, key_of(version["artifact_uri"]), version["sha256"])
    metrics = compare_metrics(version["metrics"], candidate.metrics)
    onnx = compare_outputs(version=version, original=original, candidate=candidate)
    env = compare_environment(
        record.get("environment") or {},
        environment(lock_file=find_lock_file(start=root or ".", explicit=lock_file)),
    )
    return {
        "name": version["name"],
        "version": version["version"],
        "snapshot": {
            "uri": snapshot_ref["uri"],
            "sha256": snapshot_ref["sha256"],
            "verified": True,
            "rows": candidate.data["rows_used"],
        },
        "estimator": spec.estimator,
        "seed": spec.seed,
        "metrics": metrics,
        "metrics_match": all(m["match"] for m in metrics.values()),
        "onnx": onnx,
        "environment": env,
        "reproduced": all(m["match"] for m in metrics.values()) and onnx["match"],
    }


def _recorded(record: dict[str, Any]) -> tuple[dict[str, Any], ModelSpec, list[str]]:
    missing = [k for k in ("snapshot", "model_spec", "feature_set") if not record.get(k)]
    if missing:
        raise InvalidInput(
            f"the version's lineage lacks {missing}; it cannot be reproduced", field="lineage"
        )
    spec = ModelSpec.model_validate(record["model_spec"])
    return record["snapshot"], spec, list(record["feature_set"]["features"])


def compare_metrics(
    original: dict[str, float], reproduced: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """Exactly equal is the bar: same data, same spec, same seed."""
    return {
        name: {
            "original": original.get(name),
            "reproduced": reproduced.get(name),
            "match": _same(original.get(name), reproduced.get(name)),
        }
        for name in sorted(set(original) | set(reproduced))
    }


def _same(a: float | None, b: float | None) -> bool:
    return (
        a is not None
        and b is not None
        and (a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12))
    )


def compare_outputs(
    *, version: dict[str, Any], original: bytes, candidate: Candidate
) -> dict[str, Any]:
    schema = ModelSchema.model_validate(version["schema"])
    before = load_model(
        name=version["name"],
        version=version["version"],
        data=original,
        sha256=version["sha256"],
        schema=schema,
    )
    after = load_model(
        name=version["name"],
        version=0,
        data=candidate.onnx,
        sha256=sha256_hex(candidate.onnx),
        schema=candidate.schema,
    )
    x = candidate.split.x_holdout32
    old = from_outputs(schema.task, before.predict(x))
    new = from_outputs(candidate.schema.task, after.predict(x))
    found: dict[str, Any] = {"holdout_rows": len(x)}
    if schema.task == "regression":
        diff = np.abs(old.values - new.values) / np.maximum(np.abs(old.values), 1.0)
        found |= {
            "max_relative_diff": float(diff.max(initial=0.0)),
            "tolerance": RELATIVE_TOLERANCE,
        }
        found["match"] = found["max_relative_diff"] <= RELATIVE_TOLERANCE
        return found
    found["label_mismatches"] = int((old.values != new.values).sum())
    found["tolerance"] = PROBABILITY_TOLERANCE
    if old.probabilities is not None and new.probabilities is not None:
        found["max_probability_diff"] = float(
            np.abs(old.probabilities - new.probabilities).max(initial=0.0)
        )
    found["match"] = (
        found["label_mismatches"] == 0
        and found.get("max_probability_diff", 0.0) <= PROBABILITY_TOLERANCE
    )
    return found


def compare_environment(recorded: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """Every difference between the recorded environment and this one, named."""
    mismatches = [
        {"what": key, "recorded": recorded.get(key), "now": now.get(key)}
        for key in ("python", "lock_sha256")
        if recorded.get(key) != now.get(key)
    ]
    old_libs, new_libs = recorded.get("libraries") or {}, now.get("libraries") or {}
    mismatches += [
        {"what": name, "recorded": old_libs.get(name), "now": new_libs.get(name)}
        for name in sorted(set(old_libs) | set(new_libs))
        if old_libs.get(name) != new_libs.get(name)
    ]
    return {
        "matches": not mismatches,
        "mismatches": mismatches,
        "recorded": {k: recorded.get(k) for k in ("python", "lock_sha256")},
        "now": {k: now.get(k) for k in ("python", "lock_sha256")},
    }
