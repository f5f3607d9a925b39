"""The features service's routes: training on demand, a model's drift, and a feature
set's rows as they were known at given times (point-in-time retrieval for training)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from millrace_common.contracts import TrainRequest
from millrace_common.http import errors
from millrace_common.identity import actor_of
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from millrace_features.deps import RuntimeDep
from millrace_features.drift_check import DriftMeasurement, verdict
from millrace_features.metrics import SNAPSHOTS
from millrace_features.on_demand import TrainAsk

router = APIRouter(prefix="/v1/models/{model}", tags=["features"])
feature_sets = APIRouter(prefix="/v1/feature-sets/{name}", tags=["feature sets"])
MAX_ENTITY_ROWS = 100_000


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


class EntityAt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entity_id: str = Field(min_length=1, max_length=200)
    at: AwareDatetime


class HistoricalAsk(BaseModel):
    """Entities and the times to look them up at (Feast's entity DataFrame)."""

    model_config = ConfigDict(extra="forbid")
    entities: list[EntityAt] = Field(min_length=1, max_length=MAX_ENTITY_ROWS)


class HistoricalRow(BaseModel):
    entity_id: str
    at: datetime
    event_time: datetime | None = Field(description="the row's event; null: none known by then")
    features: dict[str, Any] | None
    label: float | None


class HistoricalOut(BaseModel):
    feature_set: str
    version: int
    features: list[str]
    label: str | None
    rows: list[HistoricalRow] = Field(description="one per entity asked, in the same order")


@feature_sets.post("/historical-features", response_model=HistoricalOut, responses=errors(404, 422))
async def historical_features(
    name: str, ask: Annotated[HistoricalAsk, Body()], rt: RuntimeDep
) -> HistoricalOut:
    """For each entity and time: the feature set's newest offline row at or before that
    time, exactly what a prediction at that moment would have seen (no later event
    leaks in), with the row's label; null features when nothing was known yet."""
    feature_set = rt.project.feature_set(name)
    wanted = [(e.entity_id, e.at) for e in ask.entities]
    found = await asyncio.to_thread(rt.features.as_of, feature_set, wanted)
    return HistoricalOut(
        feature_set=feature_set.name,
        version=feature_set.version,
        features=feature_set.feature_names,
        label=feature_set.label,
        rows=[
            HistoricalRow(
                entity_id=entity,
                at=at,
                event_time=None if row is None else row.event_time,
                features=None if row is None else row.features,
                label=None if row is None else row.label,
            )
            for (entity, at), row in zip(wanted, found, strict=True)
        ],
    )
