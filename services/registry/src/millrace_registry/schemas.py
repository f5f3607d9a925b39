"""The registry's REST API in pydantic: the request bodies it accepts and the documents it
answers (what /openapi.json describes). The use cases take and return these."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from millrace_common.contracts import AliasTarget, ModelSchema
from pydantic import BaseModel, ConfigDict, Field

from millrace_registry.names import CHALLENGER, RunStatus, VersionStatus
from millrace_registry.promotion_rule import PromotionRule

Metric = Annotated[float, Field(allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
RunId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")]
BIGINT_MAX = 2**63 - 1
"""The largest integer a database column holds: a bigger one is a 422, not a 500."""
VersionNumber = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
Count = Annotated[int, Field(ge=0, le=BIGINT_MAX)]
JsonObject = dict[str, Any]
"""Free-form JSON the registry keeps as it was given (params, lineage, run details)."""
TrafficMode = Literal["none", "canary", "shadow", "sticky"]
KeyField = Literal["key", "entity_id"]

# -- request bodies ------------------------------------------------------------------


class Promotion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = Field(min_length=1)
    direction: Literal["maximize", "minimize"] = "maximize"
    margin: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    baseline: dict[str, Metric] | None = None
    """The best trivial model's metrics on the candidate's holdout (a dummy classifier or
    regressor): the candidate must beat it on ``metric`` by ``margin`` too."""

    def rule(self) -> PromotionRule:
        return PromotionRule(
            metric=self.metric, direction=self.direction, margin=self.margin, baseline=self.baseline
        )


class FinishedRun(BaseModel):
    """The run that produced a registration. The registry finishes it in the transaction
    that adds the version, so no reader sees a version whose run is still ``running``; its
    status, version, params, metrics and failure reason are the version's."""

    model_config = ConfigDict(extra="forbid")
    run_id: RunId
    timings: dict[str, Seconds] = Field(default_factory=dict)
    logs_uri: str | None = Field(default=None, max_length=1000)
    details: JsonObject = Field(default_factory=dict)
    started_at: datetime
    finished_at: datetime


class Registration(BaseModel):
    """What the trainer sends for a new version (``request_id`` makes a re-send a no-op)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)
    request_id: str = Field(min_length=1, max_length=200)
    artifact_uri: str = Field(min_length=1, max_length=1000)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: Count
    model_schema: ModelSchema = Field(alias="schema")
    metrics: dict[str, Metric]
    champion_metrics: dict[str, Metric] | None = None
    champion_version: VersionNumber | None = None
    params: JsonObject = Field(default_factory=dict)
    lineage: JsonObject = Field(default_factory=dict)
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
    version: VersionNumber
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
    version: VersionNumber | None = None
    reason: str = Field(min_length=1, max_length=2000)
    actor: str = Field(default="api", min_length=1, max_length=200)


class RunReport(BaseModel):
    """One training attempt, reported when it starts and when it ends without a version
    (failed); a run that ends in a version is finished by the registration that carries it."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=200)
    status: RunStatus
    version: VersionNumber | None = None
    params: JsonObject = Field(default_factory=dict)
    metrics: dict[str, Metric] = Field(default_factory=dict)
    timings: dict[str, Seconds] = Field(default_factory=dict)
    failure_reason: str | None = Field(default=None, max_length=5000)
    logs_uri: str | None = Field(default=None, max_length=1000)
    details: JsonObject = Field(default_factory=dict)
    started_at: datetime
    finished_at: datetime | None = None


class ChecksReport(BaseModel):
    """The outcome of a pending version's checks: it becomes ready or rejected, once."""

    model_config = ConfigDict(extra="forbid")
    passed: bool
    reason: str | None = Field(default=None, max_length=5000)
    details: JsonObject = Field(default_factory=dict)
    actor: str = Field(default="api", min_length=1, max_length=200)


class SiteGroupBody(BaseModel):
    """A group's whole member list (it replaces the previous one)."""

    model_config = ConfigDict(extra="forbid")
    sites: list[str] = Field(max_length=10_000)
    description: str = Field(default="", max_length=5000)


class ReportedModel(BaseModel):
    name: str
    alias: str = "production"
    version: VersionNumber


class Heartbeat(BaseModel):
    """What an edge agent reports about its site (fields of newer agents are kept too)."""

    model_config = ConfigDict(extra="allow")
    site: str
    models: list[ReportedModel] = Field(default_factory=list)
    last_sync: datetime | None = None
    queue_depth: Count = 0
    drops: Count = 0
    """Records the site dropped (the centre is missing exactly these)."""
    prediction_log_drops: Count = 0
    """Prediction logs the site dropped (its monitoring data, not its records)."""
    last_error: str | None = None
    sent_at: datetime


class TrafficPolicy(BaseModel):
    """The body of ``PUT /v1/models/{name}/traffic``."""

    model_config = ConfigDict(extra="forbid")
    mode: TrafficMode
    challenger_alias: str = CHALLENGER
    percent: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    key_field: KeyField | None = None
    reason: str = Field(min_length=1, max_length=2000)
    actor: str = Field(default="api", min_length=1, max_length=200)


# -- answers: models, versions, aliases, the audit log --------------------------------


class RegisteredModel(BaseModel):
    name: str
    description: str
    created_at: datetime
    latest_version: int | None
    aliases: dict[str, int] = Field(description="alias → the version it points at")
    tags: dict[str, str]


class ModelVersion(BaseModel):
    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True)
    name: str
    version: int
    status: VersionStatus
    rejection_reason: str | None
    request_id: str
    artifact_uri: str
    sha256: str
    size: int
    model_schema: ModelSchema = Field(alias="schema")
    metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    champion_version: int | None
    params: JsonObject
    promotion: Promotion | None = Field(description="the rule it was registered with")
    lineage: JsonObject
    promoted: bool
    reason: str = Field(description="why it was promoted or not")
    aliases: list[str] = Field(description="the aliases that point at this version")
    created_at: datetime
    description: str
    tags: dict[str, str]


class AliasMoved(AliasTarget):
    """What the alias points at now, and where it pointed before."""

    previous_version: int | None
    moved: bool = Field(description="false when the alias already pointed at the version")
    reason: str


class AliasDeleted(BaseModel):
    name: str
    alias: str
    deleted_version: int
    reason: str


class AuditEntry(BaseModel):
    id: int
    model: str
    action: str
    alias: str | None
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    at: datetime


# -- answers: runs and lineage --------------------------------------------------------


class TrainingRun(BaseModel):
    name: str
    run_id: str
    request_id: str
    status: RunStatus
    version: int | None
    params: JsonObject
    metrics: dict[str, float]
    timings: dict[str, float]
    failure_reason: str | None
    logs_uri: str | None
    details: JsonObject
    started_at: datetime
    finished_at: datetime | None


class RunSummary(BaseModel):
    run_id: str
    status: RunStatus
    version: int | None
    failure_reason: str | None


class RunComparison(BaseModel):
    """Runs side by side: one row per param, metric and timing, one value per run (in the
    order of ``runs``; null where a run has none)."""

    name: str
    runs: list[RunSummary]
    params: dict[str, list[Any]]
    metrics: dict[str, list[float | None]]
    timings: dict[str, list[float | None]]


class Artifact(BaseModel):
    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True)
    uri: str
    sha256: str
    size: int
    model_schema: ModelSchema = Field(alias="schema")


class PromotionDecision(BaseModel):
    promoted: bool
    reason: str


class Lineage(BaseModel):
    """DESIGN §7 for one version: what it was trained from and how, as the trainer recorded
    it (parts an older trainer did not record are null), with its run and alias moves."""

    name: str
    version: int
    status: VersionStatus
    artifact: Artifact
    train_request: JsonObject | None
    feature_set: JsonObject | None
    snapshot: JsonObject | None
    model_spec: JsonObject | None
    seed: int | None
    params: JsonObject
    metrics: dict[str, float]
    champion: JsonObject | None
    champion_metrics: dict[str, float] | None
    project: JsonObject | None
    platform: JsonObject | None
    environment: JsonObject | None
    checks: JsonObject | None
    timings: dict[str, float] | None
    run: TrainingRun | None
    decision: PromotionDecision
    alias_history: list[AuditEntry]


# -- answers: sites, site groups, the fleet -------------------------------------------


class SiteDeployment(BaseModel):
    model: str
    alias: str
    via: str = Field(description="'site' (its own) or 'group:<name>'")
    updated_at: datetime


class SyncState(BaseModel):
    """One followed model: the version the site should run, the one it reports."""

    model: str
    alias: str
    should_run: int | None
    reports: int | None
    in_sync: bool


class ReportedState(Heartbeat):
    """The site's last heartbeat, and when the registry received it."""

    received_at: datetime


class Site(BaseModel):
    """What a site should run (directly or through its groups) beside what it reported."""

    site_id: str
    manifest_key: str
    groups: list[str]
    deployments: list[SiteDeployment]
    models: list[AliasTarget] = Field(description="the targets its manifest names")
    reported: ReportedState | None
    status: list[SyncState]


class SiteUnassigned(BaseModel):
    site_id: str
    model: str
    removed_alias: str


class GroupDeployment(BaseModel):
    model: str
    alias: str
    updated_at: datetime


class SiteGroup(BaseModel):
    group: str
    description: str
    updated_at: datetime
    sites: list[str]
    deployments: list[GroupDeployment]


class GroupAssigned(SiteGroup):
    manifests_written: list[str]


class GroupUnassigned(SiteGroup):
    removed_alias: str
    manifests_written: list[str]


class HeartbeatReceived(BaseModel):
    site: str
    received_at: datetime


class HeartbeatEntry(BaseModel):
    sent_at: datetime
    received_at: datetime
    delay_seconds: float = Field(description="received_at - sent_at: late ones show outages")
    queue_depth: int | None
    drops: int | None
    last_error: str | None


class SiteStatus(Heartbeat):
    """The site's last heartbeat, when it was seen, and its recent heartbeats newest first."""

    last_seen: datetime
    history: list[HeartbeatEntry]


# -- answers: traffic -----------------------------------------------------------------


class ModelTraffic(BaseModel):
    """The traffic policy in force for a model (mode ``none`` when never set) and the
    version its challenger alias points at now."""

    model: str
    mode: TrafficMode
    challenger_alias: str
    percent: float | None
    key_field: KeyField | None
    reason: str | None
    actor: str | None
    updated_at: datetime | None
    challenger_version: int | None
