"""The features service's routes: training on demand and a model's drift."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from millrace_common.contracts import TrainRequest
from millrace_common.http import errors
from millrace_common.identity import actor_of
from pydantic import BaseModel, Field

from millrace_features.deps import RuntimeDep
from millrace_features.drift_check import DriftMeasurement, verdict
from millrace_features.metrics import SNAPSHOTS
from millrace_features.on_demand import TrainAsk

router = APIRouter(prefix="/v1/models/{model}", tags=["features"])


@router.post(
    "/train-requests",
    status_code=202,
    response_model=TrainRequest,
    responses=errors(404, 409, 422),
)
async def post_train_request(
    model: str, rt: RuntimeDep, request: Request, ask: Annotated[TrainAsk | None, Body()] = None
) -> TrainRequest:
    """A fresh snapshot of the model's feature set now, and its train request queued
    (202); no body means the defaults. 404: no such model; 409: no labelled rows yet.
    ``requested_by`` is the authenticated principal (the client's claim when auth is off)."""
    ask = ask or TrainAsk()
    ask = ask.model_copy(update={"requested_by": actor_of(request, ask.requested_by)})
    queued = await rt.offload.train_on_demand(model, ask)
    SNAPSHOTS.labels(model).inc()
    rt.relay.wake()
    return queued


class ReferenceOut(BaseModel):
    snapshot_id: str
    rows: int
    created_at: datetime
    reason: str | None


class WindowOut(BaseModel):
    length: str
    start: datetime | None
    end: datetime | None
    rows: int


class DriftOut(BaseModel):
    model: str
    feature_set: str
    reference: ReferenceOut
    window: WindowOut
    psi: dict[str, float] = Field(description="PSI per feature, highest first")
    policy: dict[str, Any] | None = Field(
        description="the model's drift policy; null when its retrain policy has none"
    )
    new_labelled_rows: int
    would_fire: bool
    reason: str | None


@router.get("/drift", response_model=DriftOut, responses=errors(404, 409))
async def get_drift(model: str, rt: RuntimeDep) -> DriftOut:
    """The PSI per feature of the model's recent window against its latest snapshot,
    and whether the drift policy would fire (404: no such model; 409: no snapshot)."""
    measured = await rt.offload.drift(model, rt.settings.drift_max_rows)
    return drift_out(measured, verdict(measured, rt.drift_gate))


def drift_out(m: DriftMeasurement, reason: str | None) -> DriftOut:
    return DriftOut(
        model=m.model,
        feature_set=m.feature_set,
        reference=ReferenceOut(
            snapshot_id=m.reference.snapshot_id,
            rows=m.reference.rows,
            created_at=m.reference.created_at,
            reason=m.reference.reason,
        ),
        window=WindowOut(
            length=m.policy.window, start=m.window_start, end=m.window_end, rows=m.rows
        ),
        psi={name: round(value, 4) for name, value in m.psi.items()},
        policy=m.policy.model_dump() if m.configured else None,
        new_labelled_rows=m.new_labelled,
        would_fire=reason is not None,
        reason=reason,
    )
