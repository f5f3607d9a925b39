"""Where a model came from: code, data, spec, environment (DESIGN §7)."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from millrace_common.contracts import TrainRequest
from millrace_common.project import FeatureSet, ModelSpec, Project

LIBRARIES = (
    "scikit-learn",
    "skl2onnx",
    "onnx",
    "onnxruntime",
    "numpy",
    "pyarrow",
    "millrace-common",
    "millrace-trainer",
)
UNKNOWN = "unknown"


def git_commit(folder: str | Path) -> str:
    """``git rev-parse HEAD`` in ``folder``, or ``unknown`` outside a repository."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else UNKNOWN


def git_dirty(folder: str | Path) -> bool | None:
    """Whether ``folder`` has uncommitted changes (None when it is not in a repository)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return bool(done.stdout.strip()) if done.returncode == 0 else None


def find_lock_file(*, start: str | Path, explicit: str | None = None) -> Path | None:
    """The workspace's ``uv.lock``: the configured one, or the nearest above ``start``."""
    if explicit:
        path = Path(explicit)
        return path if path.is_file() else None
    # the project's workspace first, then the platform's own (an installed checkout)
    for origin in (Path(start).resolve(), Path(__file__).resolve().parent):
        for folder in (origin, *origin.parents):
            if (folder / "uv.lock").is_file():
                return folder / "uv.lock"
    return None


def environment(*, lock_file: Path | None) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "lock_file": str(lock_file) if lock_file else None,
        "lock_sha256": hashlib.sha256(lock_file.read_bytes()).hexdigest() if lock_file else None,
        "libraries": {name: _version(name) for name in LIBRARIES},
    }


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def collect(
    *,
    project: Project,
    feature_set: FeatureSet,
    spec: ModelSpec,
    request: TrainRequest,
    lock_file: Path | None,
) -> dict[str, Any]:
    """The parts of the lineage known before training (the rest is added as it happens)."""
    platform_root = lock_file.parent if lock_file else Path(__file__).parent
    return {
        "project": {
            "name": project.project,
            "root": project.root,
            "git_commit": git_commit(project.root),
            "dirty": git_dirty(project.root),
            "spec_sha256": project.source_sha256,
        },
        "platform": {
            "version": _version("millrace-trainer"),
            "git_commit": git_commit(platform_root),
        },
        "snapshot": request.snapshot.model_dump(mode="json"),
        "feature_set": {
            "name": feature_set.name,
            "version": feature_set.version,
            "features": feature_set.feature_names,
            "label": feature_set.label,
            "definition": feature_set.model_dump(mode="json"),
        },
        "model_spec": spec.model_dump(mode="json"),
        "seed": spec.seed,
        "environment": environment(lock_file=lock_file),
        "train_request": {
            "request_id": request.request_id,
            "reason": request.reason,
            "requested_by": request.requested_by,
            "requested_at": request.requested_at.isoformat(),
        },
    }
