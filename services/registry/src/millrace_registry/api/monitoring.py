"""A model's live quality: its predictions as served, joined to the labels that came
later, per version, alias, site and window (``GET /v1/models/{name}/monitoring``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from millrace_common.errors import InvalidInput
from millrace_common.http import errors
from millrace_common.project import window_seconds
from pydantic import BaseModel, Field

from millrace_registry.adapters.rows import utc
from millrace_registry.deps import MonitoringDep
from millrace_registry.live_quality import WindowQuality
from millrace_registry.monitoring import Report

router = APIRouter(prefix="/models", tags=["monitoring"])
DEFAULT_RANGE = timedelta(days=1)


class QualityOut(BaseModel):
    version: int
    alias: str | None
    site: str | None = Field(description="the edge site that answered; null for serving")
    start: datetime
    end: datetime
    predictions: int
    labelled: int = Field(description="predictions whose label has arrived")
    late_labels: int = Field(description="labelled predictions whose label came after `end`")
    metrics: dict[str, float] = Field(
        description="accuracy, f1, precision, recall, roc_auc, log_loss; or mae, rmse, r2"
    )
    distribution: dict[str, float] = Field(
        description="the share of each predicted label, or the values' mean and std"
    )

    @classmethod
    def of(cls, entry: WindowQuality) -> QualityOut:
        return cls.model_validate(entry, from_attributes=True)


class LabelsOut(BaseModel):
    received: int = Field(description="labels stored for predictions of the range")
    matched: int = Field(description="labels that found at least one prediction")
    unmatched: int = Field(description="labels that found none (in the range)")
    late: int = Field(description="predictions labelled after their window had ended")
    duplicate: int = Field(description="labels for a row already labelled, or a repeated id")


class ComparisonOut(BaseModel):
    """An alias's labelled predictions (a canary, a shadow) against production's over the
    range: the mean loss of each (the share wrong, or the mean absolute error), ``z`` of
    the difference (positive: the alias errs more) and ``p_worse``, the one-sided
    confidence that it is worse."""

    challenger_labelled: int
    production_labelled: int
    challenger_loss: float
    production_loss: float
    z: float
    p_worse: float


class MonitoringOut(BaseModel):
    model: str
    task: str
    metric: str = Field(description="the model's metric (the one decisions compare)")
    since: datetime
    until: datetime
    window_seconds: float
    label_horizon_seconds: float
    labels: LabelsOut
    versions: list[QualityOut] = Field(description="each version, alias and site over the range")
    windows: list[QualityOut]
    comparisons: dict[str, ComparisonOut] = Field(
        description="each other alias against production, by alias"
    )
    drift: dict[str, dict[str, float]] = Field(
        description="by version: each feature's PSI, the inputs it answered in the range "
        "against the snapshot it was trained on (0: the same; above 0.2: a significant shift)"
    )

    @classmethod
    def of(cls, report: Report) -> MonitoringOut:
        return cls(
            model=report.model,
            task=report.policy.task,
            metric=report.policy.metric,
            since=report.since,
            until=report.until,
            window_seconds=report.window,
            label_horizon_seconds=report.policy.horizon,
            labels=LabelsOut.model_validate(report.labels, from_attributes=True),
            versions=[QualityOut.of(w) for w in report.overall],
            windows=[QualityOut.of(w) for w in report.windows],
            comparisons={
                alias: ComparisonOut.model_validate(c.as_dict())
                for alias, c in report.comparisons.items()
            },
            drift={str(version): found for version, found in report.drift.items()},
        )


@router.get("/{name}/monitoring", response_model=MonitoringOut, responses=errors(404, 422))
async def get_monitoring(
    name: str,
    monitoring: MonitoringDep,
    since: Annotated[
        datetime | None, Query(description="ISO 8601; default a day before `until`")
    ] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; default now")] = None,
    window: Annotated[
        str | None, Query(description="30s, 10m, 1h, 1d; default the spec's monitoring.window")
    ] = None,
) -> MonitoringOut:
    """Live quality of the predictions made in [since, until)."""
    until = utc(until) if until is not None else datetime.now(UTC)
    since = utc(since) if since is not None else until - DEFAULT_RANGE
    if since >= until:
        raise InvalidInput("since must be before until", field="since")
    seconds = window_length(window) if window is not None else None
    report = await asyncio.to_thread(
        monitoring.report, name=name, since=since, until=until, window=seconds
    )
    return MonitoringOut.of(report)


def window_length(text: str) -> float:
    try:
        seconds = window_seconds(text)
    except ValueError:
        raise InvalidInput("window must look like 30s, 10m, 2h or 1d", field="window") from None
    if seconds == 0:
        raise InvalidInput("window must be longer than 0s", field="window")
    return float(seconds)
