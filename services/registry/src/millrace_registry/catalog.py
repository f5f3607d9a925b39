"""Catalog use cases beyond registration: search, updates, alias removal, rollback,
lineage documents and training runs. Each change is one transaction with its audit row."""

from __future__ import annotations

from typing import Any

import structlog
from millrace_common.db import transaction
from millrace_common.errors import Conflict, InvalidInput, NotFound
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry import views
from millrace_registry.adapters import repository as repo
from millrace_registry.domain import (
    ARCHIVED,
    CHAMPION,
    PRODUCTION,
    READY,
    RUN_RUNNING,
    check_alias,
    check_name,
)
from millrace_registry.filters import MetricFilter, page, tags_match
from millrace_registry.schemas import ModelUpdate, RunReport, VersionUpdate
from millrace_registry.service import Registry

log = structlog.get_logger(__name__)
PROTECTED_ALIASES = (PRODUCTION, CHAMPION)


class Catalog:
    def __init__(self, *, factory: sessionmaker[Session], registry: Registry) -> None:
        self._factory = factory
        self._registry = registry

    # -- search ----------------------------------------------------------------------

    def search_models(
        self,
        *,
        name: str | None,
        tags: dict[str, str | None],
        alias: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[dict[str, Any]], int]:
        if alias is not None:
            check_alias(alias)
        docs = [
            doc
            for doc in self._registry.models()
            if (name is None or name.lower() in doc["name"].lower())
            and tags_match(doc["tags"], tags)
            and (alias is None or alias in doc["aliases"])
        ]
        return page(docs, limit=limit, offset=offset)

    def search_versions(
        self,
        *,
        name: str,
        status: str | None,
        tags: dict[str, str | None],
        metric: MetricFilter | None,
        alias: str | None,
        limit: int,
        offset: int,
        newest_first: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        if alias is not None:
            check_alias(alias)
        docs = [
            doc
            for doc in self._registry.versions(name=name)
            if (status is None or doc["status"] == status)
            and tags_match(doc["tags"], tags)
            and (metric is None or metric.matches(doc["metrics"]))
            and (alias is None or alias in doc["aliases"])
        ]
        return page(docs[::-1] if newest_first else docs, limit=limit, offset=offset)

    # -- updates ---------------------------------------------------------------------

    def update_model(self, *, name: str, update: ModelUpdate) -> dict[str, Any]:
        changes = update.model_dump(exclude_none=True, exclude={"actor"})
        if not changes:
            raise InvalidInput("nothing to update: give description and/or tags", field="body")
        with transaction(self._factory) as session:
            if repo.lock_existing_model(session, name=name) is None:
                raise NotFound(f"no model '{name}'")
            repo.update_model(session, name=name, values=changes)
            repo.add_audit(
                session,
                model=name,
                action="model_updated",
                actor=update.actor,
                reason=f"updated {', '.join(sorted(changes))}",
            )
        return self._registry.model(name=name)

    def update_version(self, *, name: str, version: int, update: VersionUpdate) -> dict[str, Any]:
        changes = update.model_dump(exclude_none=True, exclude={"actor", "reason"})
        if not changes:
            raise InvalidInput(
                "nothing to update: give description, tags and/or status", field="body"
            )
        with transaction(self._factory) as session:
            if repo.lock_existing_model(session, name=name) is None:
                raise NotFound(f"no model '{name}'")
            row = _version_row(session, name, version)
            if "status" in changes:
                _check_status_change(session, row=row, status=changes["status"])
            repo.update_version(session, name=name, version=version, values=changes)
            repo.add_audit(
                session,
                model=name,
                action="version_updated",
                actor=update.actor,
                to_version=version,
                reason=update.reason or f"updated {', '.join(sorted(changes))}",
            )
        return self._registry.version(name=name, version=version)

    def delete_alias(self, *, name: str, alias: str, reason: str, actor: str) -> dict[str, Any]:
        """Remove an alias (audited). production and champion can only be moved: serving
        and sites follow them, and nothing would tell them to stop."""
        check_alias(alias)
        if not reason.strip():
            raise InvalidInput("a reason is required", field="reason")
        if alias in PROTECTED_ALIASES:
            raise Conflict(f"alias '{alias}' cannot be deleted, only moved", field="alias")
        with transaction(self._factory) as session:
            if repo.lock_existing_model(session, name=name) is None:
                raise NotFound(f"no model '{name}'")
            version = repo.alias_version(session, name=name, alias=alias)
            if version is None:
                raise NotFound(f"model '{name}' has no alias '{alias}'")
            repo.delete_alias(session, name=name, alias=alias)
            repo.add_audit(
                session,
                model=name,
                action="alias_deleted",
                alias=alias,
                from_version=version,
                actor=actor,
                reason=reason,
            )
        log.info("alias_deleted", model=name, alias=alias, version=version, actor=actor)
        return {"name": name, "alias": alias, "deleted_version": version, "reason": reason}

    def rollback(
        self, *, name: str, version: int | None, reason: str, actor: str
    ) -> dict[str, Any]:
        """Production back to an earlier ready version, through the audited alias move."""
        target = self._rollback_target(name=name, version=version)
        return self._registry.move_alias(
            name=name, alias=PRODUCTION, version=target, reason=f"rollback: {reason}", actor=actor
        )

    def _rollback_target(self, *, name: str, version: int | None) -> int:
        with self._factory() as session:
            if repo.get_model(session, name=name) is None:
                raise NotFound(f"no model '{name}'")
            current = repo.alias_version(session, name=name, alias=PRODUCTION)
            if current is None:
                raise Conflict(f"model '{name}' has no production version to roll back")
            if version is None:
                version = _previous_production(session, name=name, current=current)
            row = _version_row(session, name, version)
        if version >= current:
            raise Conflict(f"v{version} is not earlier than production v{current}", field="version")
        if row["status"] != READY:
            raise Conflict(f"v{version} is {row['status']}, not ready", field="version")
        return version

    # -- lineage ---------------------------------------------------------------------

    def lineage(self, *, name: str, version: int) -> dict[str, Any]:
        """DESIGN §7 for one version, as one document, with its run and the moves of it."""
        doc = self._registry.version(name=name, version=version)
        record = doc["lineage"] or {}
        with self._factory() as session:
            run = _run_of(session, name=name, request_id=doc["request_id"])
            moves = [
                views.audit_doc(a)
                for a in repo.list_audit(session, name=name, limit=10_000)
                if a["to_version"] == version or a["from_version"] == version
            ]
        return {
            "name": name,
            "version": version,
            "status": doc["status"],
            "artifact": {
                "uri": doc["artifact_uri"],
                "sha256": doc["sha256"],
                "size": doc["size"],
                "schema": doc["schema"],
            },
            "train_request": record.get("train_request"),
            "feature_set": record.get("feature_set"),
            "snapshot": record.get("snapshot"),
            "model_spec": record.get("model_spec"),
            "seed": record.get("seed"),
            "params": doc["params"],
            "metrics": doc["metrics"],
            "champion": record.get("champion"),
            "champion_metrics": doc["champion_metrics"],
            "project": record.get("project"),
            "platform": record.get("platform"),
            "environment": record.get("environment"),
            "checks": record.get("checks"),
            "timings": record.get("timings"),
            "run": run,
            "decision": {"promoted": doc["promoted"], "reason": doc["reason"]},
            "alias_history": sorted(moves, key=lambda a: a["id"]),
        }

    # -- runs ------------------------------------------------------------------------

    def record_run(self, *, name: str, run_id: str, report: RunReport) -> dict[str, Any]:
        """A run starting, or ending without a version; a finished run's status is final
        (a late report must not turn a run its registration finished back into another)."""
        check_name(name, field="name")
        check_name(run_id, field="run_id")
        values = report.model_dump(mode="python") | {"model": name, "run_id": run_id}
        with transaction(self._factory) as session:
            repo.lock_model(session, name=name)
            current = repo.get_run(session, name=name, run_id=run_id)
            if current is not None and current["status"] not in (RUN_RUNNING, report.status):
                raise Conflict(
                    f"run '{run_id}' already finished {current['status']}", field="status"
                )
            repo.upsert_run(session, values=values)
        log.info("run_recorded", model=name, run_id=run_id, status=report.status)
        return self.run(name=name, run_id=run_id)

    def run(self, *, name: str, run_id: str) -> dict[str, Any]:
        with self._factory() as session:
            row = repo.get_run(session, name=name, run_id=run_id)
            if row is None:
                _model_row(session, name)
                raise NotFound(f"model '{name}' has no run '{run_id}'")
            return views.run_doc(row)

    def runs(
        self, *, name: str, status: str | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        with self._factory() as session:
            _model_row(session, name)
            docs = [views.run_doc(r) for r in repo.list_runs(session, name=name, status=status)]
        return page(docs, limit=limit, offset=offset)

    def compare(self, *, name: str, run_ids: list[str]) -> dict[str, Any]:
        """Runs side by side: one row per param, metric and timing, one column per run."""
        if len(run_ids) < 2:
            raise InvalidInput("compare needs at least two runs", field="run")
        found = [self.run(name=name, run_id=run_id) for run_id in run_ids]
        return {
            "name": name,
            "runs": [
                {k: r[k] for k in ("run_id", "status", "version", "failure_reason")} for r in found
            ],
            **{part: _side_by_side(found, part) for part in ("params", "metrics", "timings")},
        }


def _side_by_side(runs: list[dict[str, Any]], part: str) -> dict[str, list[Any]]:
    keys = sorted({key for run in runs for key in run[part]})
    return {key: [run[part].get(key) for run in runs] for key in keys}


def _check_status_change(session: Session, *, row: RowMapping, status: str) -> None:
    current = row["status"]
    if current not in (READY, ARCHIVED):
        raise Conflict(
            f"v{row['version']} is {current}; only ready and archived versions change status",
            field="status",
        )
    held = sorted(
        a for a, v in repo.aliases_of(session, name=row["model"]).items() if v == row["version"]
    )
    if status == ARCHIVED and held:
        raise Conflict(
            f"v{row['version']} holds {', '.join(held)}; move those aliases first", field="status"
        )


def _previous_production(session: Session, *, name: str, current: int) -> int:
    for entry in repo.list_audit(session, name=name, limit=10_000):
        earlier = entry["from_version"]
        if (
            entry["alias"] == PRODUCTION
            and entry["to_version"] == current
            and earlier is not None
            and earlier < current
        ):
            return int(earlier)
    raise Conflict(f"model '{name}' has no earlier production version; name one", field="version")


def _run_of(session: Session, *, name: str, request_id: str) -> dict[str, Any] | None:
    """The run that registered the version: the first of its train request's attempts to
    end in a version (a later re-send of the request ends in the same one)."""
    rows = [r for r in repo.list_runs(session, name=name) if r["request_id"] == request_id]
    ended = [r for r in rows if r["version"] is not None] or rows
    return views.run_doc(min(ended, key=lambda r: r["id"])) if ended else None


def _model_row(session: Session, name: str) -> RowMapping:
    row = repo.get_model(session, name=name)
    if row is None:
        raise NotFound(f"no model '{name}'")
    return row


def _version_row(session: Session, name: str, version: int) -> RowMapping:
    row = repo.get_version(session, name=name, version=version)
    if row is None:
        _model_row(session, name)
        raise NotFound(f"model '{name}' has no version {version}")
    return row
