"""The leader's retraining check, run on a timer: for each model of the project, is a
retrain due (its policy: labelled rows, schedule; or drift)? Then cut the snapshot and
queue its train request through the outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from millrace_common.errors import MillraceError

from millrace_features.adapters.snapshots import labelled_count, last_snapshot
from millrace_features.drift_check import verdict
from millrace_features.metrics import DRIFT_PSI, SNAPSHOTS
from millrace_features.retrain_policy import retrain_reason
from millrace_features.runtime import Runtime

log = structlog.get_logger(__name__)


async def check_models(runtime: Runtime) -> None:
    drift_due = runtime.drift_due()
    for model in runtime.project.models.values():
        reason = await asyncio.to_thread(policy_due, runtime, model.name)
        if drift_due:
            drifted = await drift_due_for(runtime, model.name)
            reason = reason or drifted
        if reason is not None:
            await snapshot(runtime, model.name, reason)
            runtime.relay.wake()


def policy_due(runtime: Runtime, model_name: str) -> str | None:
    model = runtime.project.model(model_name)
    with runtime.factory() as session:
        return retrain_reason(
            model.retrain,
            labelled=labelled_count(session, model.feature_set),
            last=last_snapshot(session, model.name),
            now=datetime.now(UTC),
            started_at=runtime.started_at,
        )


async def drift_due_for(runtime: Runtime, model_name: str) -> str | None:
    """Measure the model's drift (gauge, log) and say whether its drift policy fires."""
    try:
        measured = await runtime.offload.drift(model_name, runtime.settings.drift_max_rows)
    except MillraceError:  # no snapshot (with a reference) yet: nothing to compare with
        return None
    for feature, value in measured.psi.items():
        DRIFT_PSI.labels(model_name, feature).set(value)
    reason = verdict(measured, runtime.drift_gate)
    runtime.drift_gate.observe(measured)
    log.info(
        "drift_measured",
        model=model_name,
        reference=measured.reference.snapshot_id,
        rows=measured.rows,
        top={name: round(value, 3) for name, value in list(measured.psi.items())[:3]},
        fires=reason is not None,
    )
    return reason


async def snapshot(runtime: Runtime, model_name: str, reason: str) -> None:
    request = await runtime.offload.snapshot(model_name, reason)
    SNAPSHOTS.labels(model_name).inc()
    log.info(
        "train_requested",
        model=model_name,
        request_id=request.request_id,
        snapshot=request.snapshot.uri,
        rows=request.snapshot.rows,
        reason=reason,
    )
