"""Request bodies of the registry's REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from millrace_common.contracts import ModelSchema
from pydantic import BaseModel, ConfigDict, Field

from millrace_registry.domain import PromotionRule

Metric = Annotated[float, Field(allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
RunId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")]


class Promotion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = Field(min_length=1)
    direction: Literal["maximize", "minimize"] = "maximize"
    margin: float = Field(default=0.0, ge=0, allow_inf_nan=False)

    def rule(self) -> PromotionRule:
        return PromotionRule(metric=self.metric, direction=self.direction, margin=self.margin)


class FinishedRun(BaseModel):
    """The run that produced a registration. The registry finishes it in the transaction
    that adds the version, so no reader sees a version whose run is still ``running``; its
    status, version, params, metrics and failure reason are the version's."""

    model_config = ConfigDict(extra="forbid")
    run_id: RunId
    timings: dict[str, Seconds] = Field(default_factory=dict)
    logs_uri: str | None = Field(default=None, max_length=1000)
    details: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime
    finished_at: datetime


class Registration(BaseModel):
    """What the trainer sends for a new version (``request_id`` makes a re-send a no-op)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)
    request_id: str = Field(min_length=1, max_length=200)
    artifact_uri: str = Field(min_length=1, max_length=1000)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    model_schema: ModelSchema = Field(alias="schema")
    metrics: dict[str, Metric]
    champion_metrics: dict[str, Metric] | None = None
    champion_version: int | None = Field(default=None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    lineage: dict[str, Any] = Field(default_factory=dict)
    status: Literal["pending", "ready", "rejected"] = "ready"
    """``pending``: registered before its checks ran, by a pipeline that records them later
    (``POST …/checks``); it holds no alias until then. ``ready``/``rejected``: registered
    with its checks done, as the trainer always does (it checks before it uploads)."""
    rejection_reason: str | None = None
    promotion: Promotion
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    actor: str = Field(default="trainer", min_length=1, max_length=200)
    run: FinishedRun | None = None


class AliasMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)
    reason: str = Field(min_length=1, max_length=2000)
    actor: str = Field(default="api", min_length=1, max_length=200)


class SiteAssignment(BaseModel):
    """A site or a site group follows a model's alias (audited with the reason)."""

    model_config = ConfigDict(extra="forbid")
    alias: str = "production"
    reason: str = Field(default="", max_length=2000)
    actor: str = Field(default="api", min_length=1, max_length=200)


Tags = dict[
    Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")],
    Annotated[str, Field(max_length=500)],
]


class ModelUpdate(BaseModel):
    """A partial update; ``tags`` replaces the whole tag map."""

    model_config = ConfigDict(extra="forbid")
    description: str | None = Field(default=None, max_length=5000)
    tags: Tags | None = None
    actor: str = Field(default="api", min_length=1, max_length=200)


class VersionUpdate(ModelUpdate):
    status: Literal["ready", "archived"] | None = None
    reason: str | None = Field(default=None, max_length=2000)


class Rollback(BaseModel):
    """Production back to an earlier ready version (the previous one when not named)."""

    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(default=None, ge=1)
    reason: str = Field(min_length=1, max_length=2000)
    actor: str = Field(default="api", min_length=1, max_length=200)


class RunReport(BaseModel):
    """One training attempt, reported when it starts and when it ends without a version
    (failed); a run that ends in a version is finished by the registration that carries it."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=200)
    status: Literal["running", "succeeded", "rejected", "failed"]
    version: int | None = Field(default=None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Metric] = Field(default_factory=dict)
    timings: dict[str, Seconds] = Field(default_factory=dict)
    failure_reason: str | None = Field(default=None, max_length=5000)
    logs_uri: str | None = Field(default=None, max_length=1000)
    details: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime
    finished_at: datetime | None = None


class ChecksReport(BaseModel):
    """The outcome of a pending version's checks: it becomes ready or rejected, once."""

    model_config = ConfigDict(extra="forbid")
    passed: bool
    reason: str | None = Field(default=None, max_length=5000)
    details: dict[str, Any] = Field(default_factory=dict)
    actor: str = Field(default="api", min_length=1, max_length=200)
