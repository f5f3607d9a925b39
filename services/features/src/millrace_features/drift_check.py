"""Drift monitoring: measure a model's recent feature rows against its latest snapshot's
reference distribution, and decide whether the drift policy fires. Used by the leader's
retraining timer and by ``GET /v1/models/{model}/drift``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from millrace_common.distribution import psi_by_feature
from millrace_common.errors import Conflict, NotFound
from millrace_common.project import DriftPolicy, Project
from sqlalchemy.orm import Session, sessionmaker

from millrace_features.adapters.snapshots import (
    Reference,
    labelled_count,
    latest_reference,
    recent_window,
)
from millrace_features.drift import drift_reason, is_drift_reason, rearms


@dataclass(frozen=True)
class DriftMeasurement:
    model: str
    feature_set: str
    policy: DriftPolicy
    configured: bool  # the model's retrain policy has a ``drift`` entry
    reference: Reference
    rows: int
    window_start: datetime | None
    window_end: datetime | None
    psi: dict[str, float]  # highest first
    new_labelled: int


def measure_drift(
    *, factory: sessionmaker[Session], project: Project, model: str, max_rows: int
) -> DriftMeasurement:
    """PSI per feature of the newest ``window`` of rows against the latest snapshot."""
    spec = project.models.get(model)
    if spec is None:
        raise NotFound(f"no model '{model}' in the project", field="model")
    policy = spec.retrain.drift or DriftPolicy()
    with factory() as session:
        reference = latest_reference(session, model)
        if reference is None:
            raise Conflict(f"model '{model}' has no snapshot yet to compare with", field="model")
        if reference.distribution is None:
            raise Conflict(
                f"snapshot {reference.snapshot_id} of '{model}' was cut without a reference "
                "distribution; the next snapshot will have one",
                field="model",
            )
        window = recent_window(
            session, spec.feature_set, seconds=policy.window_seconds, limit=max_rows
        )
        labelled = labelled_count(session, spec.feature_set)
    return DriftMeasurement(
        model=model,
        feature_set=spec.feature_set,
        policy=policy,
        configured=spec.retrain.drift is not None,
        reference=reference,
        rows=len(window.rows),
        window_start=window.start,
        window_end=window.end,
        psi=psi_by_feature(reference.distribution, window.rows),
        new_labelled=labelled - reference.labelled_rows,
    )


@dataclass
class DriftGate:
    """Stops one drift from firing twice: after a drift-triggered snapshot, drift fires
    again only once a measurement against that snapshot has come back under the
    threshold. Kept in memory: after a restart a drift-triggered snapshot stays quiet
    until such a measurement."""

    _rearmed: dict[str, str] = field(default_factory=dict)

    def armed(self, m: DriftMeasurement) -> bool:
        return (
            not is_drift_reason(m.reference.reason)
            or self._rearmed.get(m.model) == m.reference.snapshot_id
        )

    def observe(self, m: DriftMeasurement) -> None:
        if rearms(m.policy, psi_values=m.psi, rows=m.rows):
            self._rearmed[m.model] = m.reference.snapshot_id


def verdict(m: DriftMeasurement, gate: DriftGate) -> str | None:
    """The drift policy's reason to retrain now, or None (always None without a policy)."""
    if not m.configured:
        return None
    return drift_reason(
        m.policy, psi_values=m.psi, rows=m.rows, new_labelled=m.new_labelled, armed=gate.armed(m)
    )
