"""Documents the API returns and events the registry publishes, built from table rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from millrace_common.contracts import AliasTarget, ModelPublished, ModelSchema
from sqlalchemy.engine import RowMapping


def utc(value: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def version_doc(row: RowMapping, *, aliases: dict[str, int]) -> dict[str, Any]:
    return {
        "name": row["model"],
        "version": row["version"],
        "status": row["status"],
        "rejection_reason": row["rejection_reason"],
        "request_id": row["request_id"],
        "artifact_uri": row["artifact_uri"],
        "sha256": row["sha256"],
        "size": row["size"],
        "schema": row["model_schema"],
        "metrics": row["metrics"],
        "champion_metrics": row["champion_metrics"],
        "champion_version": row["champion_version"],
        "params": row["params"],
        "promotion": row["promotion"],
        "lineage": row["lineage"],
        "promoted": row["promoted"],
        "reason": row["decision"],
        "aliases": sorted(a for a, v in aliases.items() if v == row["version"]),
        "created_at": utc(row["created_at"]),
        "description": row["description"],
        "tags": row["tags"] or {},
    }


def model_doc(row: RowMapping, *, aliases: dict[str, int], latest: int | None) -> dict[str, Any]:
    return {
        "name": row["name"],
        "description": row["description"],
        "created_at": utc(row["created_at"]),
        "latest_version": latest,
        "aliases": aliases,
        "tags": row["tags"] or {},
    }


def audit_doc(row: RowMapping) -> dict[str, Any]:
    return {
        key: row[key]
        for key in (
            "id",
            "model",
            "action",
            "alias",
            "from_version",
            "to_version",
            "actor",
            "reason",
        )
    } | {"at": utc(row["at"])}


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


def run_doc(row: RowMapping) -> dict[str, Any]:
    finished = row["finished_at"]
    return {
        "name": row["model"],
        "run_id": row["run_id"],
        "request_id": row["request_id"],
        "status": row["status"],
        "version": row["version"],
        "params": row["params"],
        "metrics": row["metrics"],
        "timings": row["timings"],
        "failure_reason": row["failure_reason"],
        "logs_uri": row["logs_uri"],
        "details": row["details"],
        "started_at": utc(row["started_at"]),
        "finished_at": utc(finished) if finished else None,
    }
