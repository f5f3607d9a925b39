"""Table rows read as what the registry answers and publishes: the API's documents, the
alias targets of sites and serving, and ``ModelPublished`` events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from millrace_common.contracts import AliasTarget, ModelPublished, ModelSchema
from sqlalchemy.engine import RowMapping

from millrace_registry.schemas import (
    AuditEntry,
    HeartbeatEntry,
    JsonObject,
    ModelTraffic,
    ModelVersion,
    RegisteredModel,
    ReportedState,
    SiteStatus,
    TrainingRun,
)


def utc(value: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def model_version(row: RowMapping, *, aliases: Mapping[str, int]) -> ModelVersion:
    return ModelVersion(
        name=row["model"],
        version=row["version"],
        status=row["status"],
        rejection_reason=row["rejection_reason"],
        request_id=row["request_id"],
        artifact_uri=row["artifact_uri"],
        sha256=row["sha256"],
        size=row["size"],
        model_schema=ModelSchema.model_validate(row["model_schema"]),
        metrics=row["metrics"],
        champion_metrics=row["champion_metrics"],
        champion_version=row["champion_version"],
        params=row["params"],
        promotion=row["promotion"],
        lineage=row["lineage"],
        promoted=row["promoted"],
        reason=row["decision"],
        aliases=sorted(a for a, v in aliases.items() if v == row["version"]),
        created_at=utc(row["created_at"]),
        description=row["description"],
        tags=row["tags"] or {},
    )


def registered_model(
    row: RowMapping, *, aliases: Mapping[str, int], latest: int | None
) -> RegisteredModel:
    return RegisteredModel(
        name=row["name"],
        description=row["description"],
        created_at=utc(row["created_at"]),
        latest_version=latest,
        aliases=dict(aliases),
        tags=row["tags"] or {},
    )


def audit_entry(row: RowMapping) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        model=row["model"],
        action=row["action"],
        alias=row["alias"],
        from_version=row["from_version"],
        to_version=row["to_version"],
        actor=row["actor"],
        reason=row["reason"],
        at=utc(row["at"]),
    )


def training_run(row: RowMapping) -> TrainingRun:
    finished = row["finished_at"]
    return TrainingRun(
        name=row["model"],
        run_id=row["run_id"],
        request_id=row["request_id"],
        status=row["status"],
        version=row["version"],
        params=row["params"],
        metrics=row["metrics"],
        timings=row["timings"],
        failure_reason=row["failure_reason"],
        logs_uri=row["logs_uri"],
        details=row["details"],
        started_at=utc(row["started_at"]),
        finished_at=utc(finished) if finished else None,
    )


def alias_target(row: RowMapping, *, alias: str) -> AliasTarget:
    return AliasTarget(
        name=row["model"],
        version=row["version"],
        alias=alias,
        artifact_uri=row["artifact_uri"],
        sha256=row["sha256"],
        size=row["size"],
        model_schema=ModelSchema.model_validate(row["model_schema"]),
    )


def published(row: RowMapping, *, alias: str, reason: str) -> ModelPublished:
    """The event announcing that ``alias`` of a model now points at this version."""
    return ModelPublished(
        event_id=str(uuid.uuid4()),
        name=row["model"],
        version=row["version"],
        alias=alias,
        artifact_uri=row["artifact_uri"],
        sha256=row["sha256"],
        size=row["size"],
        model_schema=ModelSchema.model_validate(row["model_schema"]),
        lineage_id=row["request_id"],
        published_at=datetime.now(UTC),
        reason=reason,
    )


def reported_state(row: RowMapping) -> ReportedState:
    """A heartbeat row: the state the site reported, and when it arrived."""
    state: JsonObject = row["state"]
    return ReportedState.model_validate(state | {"received_at": utc(row["received_at"])})


def heartbeat_entry(row: RowMapping) -> HeartbeatEntry:
    sent, received = utc(row["sent_at"]), utc(row["received_at"])
    state: JsonObject = row["state"]
    return HeartbeatEntry(
        sent_at=sent,
        received_at=received,
        delay_seconds=round((received - sent).total_seconds(), 3),
        queue_depth=state.get("queue_depth"),
        drops=state.get("drops"),
        last_error=state.get("last_error"),
    )


def site_status(newest_first: list[RowMapping]) -> SiteStatus:
    """A site's heartbeat rows, newest first: its last state and its recent history."""
    last = newest_first[0]
    state: JsonObject = last["state"]
    return SiteStatus.model_validate(
        state
        | {
            "last_seen": utc(last["received_at"]),
            "history": [heartbeat_entry(row) for row in newest_first],
        }
    )


def model_traffic(name: str, row: RowMapping, *, challenger_version: int | None) -> ModelTraffic:
    return ModelTraffic(
        model=name,
        mode=row["mode"],
        challenger_alias=row["challenger_alias"],
        percent=row["percent"],
        key_field=row["key_field"],
        reason=row["reason"],
        actor=row["actor"],
        updated_at=utc(row["updated_at"]),
        challenger_version=challenger_version,
    )
