"""The catalog: registered models and their versions read, searched and described (text,
tags, archiving), what an alias points at, the audit log, and a version's lineage. An
edit is one transaction with its audit row; nothing here moves an alias."""

from __future__ import annotations

from millrace_common.contracts import AliasTarget
from millrace_common.db import transaction
from millrace_common.errors import Conflict, InvalidInput, NotFound
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters import repository as repo
from millrace_registry.adapters import rows
from millrace_registry.adapters.repository import ModelChanges, VersionChanges
from millrace_registry.names import ARCHIVED, READY, VersionStatus, check_alias
from millrace_registry.runs import run_of_request
from millrace_registry.schemas import (
    Artifact,
    AuditEntry,
    Lineage,
    ModelUpdate,
    ModelVersion,
    PromotionDecision,
    RegisteredModel,
    VersionUpdate,
)
from millrace_registry.search import MetricFilter, page, tags_match


class Catalog:
    """Synchronous use cases (the HTTP layer runs them in worker threads)."""

    def __init__(self, *, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    # -- models ----------------------------------------------------------------------

    def models(self) -> list[RegisteredModel]:
        with self._factory() as session:
            aliases, latest = repo.all_aliases(session), repo.latest_versions(session)
            return [
                rows.registered_model(
                    row, aliases=aliases.get(row["name"], {}), latest=latest.get(row["name"])
                )
                for row in repo.list_models(session)
            ]

    def model(self, *, name: str) -> RegisteredModel:
        with self._factory() as session:
            row = _model_row(session, name)
            latest = repo.latest_versions(session).get(name)
            return rows.registered_model(
                row, aliases=repo.aliases_of(session, name=name), latest=latest
            )

    def search_models(
        self,
        *,
        name: str | None,
        tags: dict[str, str | None],
        alias: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[RegisteredModel], int]:
        """Models whose name contains ``name`` (any case), with the tags and the alias."""
        if alias is not None:
            check_alias(alias)
        found = [
            model
            for model in self.models()
            if (name is None or name.lower() in model.name.lower())
            and tags_match(model.tags, tags)
            and (alias is None or alias in model.aliases)
        ]
        return page(found, limit=limit, offset=offset)

    def update_model(self, *, name: str, update: ModelUpdate) -> RegisteredModel:
        changes: ModelChanges = {}
        if update.description is not None:
            changes["description"] = update.description
        if update.tags is not None:
            changes["tags"] = update.tags
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
        return self.model(name=name)

    # -- versions --------------------------------------------------------------------

    def versions(self, *, name: str, request_id: str | None = None) -> list[ModelVersion]:
        """A model's versions, oldest first (the one a train request registered, if named)."""
        with self._factory() as session:
            _model_row(session, name)
            if request_id is None:
                found = repo.list_versions(session, name=name)
            else:
                row = repo.version_by_request(session, name=name, request_id=request_id)
                found = [] if row is None else [row]
            # one read of the aliases for the whole list, so a reader racing an alias move
            # never sees an alias on two versions (or on none)
            aliases = repo.aliases_of(session, name=name)
            return [rows.model_version(row, aliases=aliases) for row in found]

    def version(self, *, name: str, version: int) -> ModelVersion:
        with self._factory() as session:
            row = _version_row(session, name, version)
            return rows.model_version(row, aliases=repo.aliases_of(session, name=name))

    def search_versions(
        self,
        *,
        name: str,
        status: VersionStatus | None,
        tags: dict[str, str | None],
        metric: MetricFilter | None,
        alias: str | None,
        limit: int,
        offset: int,
        newest_first: bool = False,
    ) -> tuple[list[ModelVersion], int]:
        if alias is not None:
            check_alias(alias)
        found = [
            version
            for version in self.versions(name=name)
            if (status is None or version.status == status)
            and tags_match(version.tags, tags)
            and (metric is None or metric.matches(version.metrics))
            and (alias is None or alias in version.aliases)
        ]
        return page(found[::-1] if newest_first else found, limit=limit, offset=offset)

    def update_version(self, *, name: str, version: int, update: VersionUpdate) -> ModelVersion:
        changes: VersionChanges = {}
        if update.description is not None:
            changes["description"] = update.description
        if update.tags is not None:
            changes["tags"] = update.tags
        if update.status is not None:
            changes["status"] = update.status
        if not changes:
            raise InvalidInput(
                "nothing to update: give description, tags and/or status", field="body"
            )
        with transaction(self._factory) as session:
            if repo.lock_existing_model(session, name=name) is None:
                raise NotFound(f"no model '{name}'")
            row = _version_row(session, name, version)
            if update.status is not None:
                _check_status_change(session, row=row, status=update.status)
            repo.update_version(session, name=name, version=version, values=changes)
            repo.add_audit(
                session,
                model=name,
                action="version_updated",
                actor=update.actor,
                to_version=version,
                reason=update.reason or f"updated {', '.join(sorted(changes))}",
            )
        return self.version(name=name, version=version)

    # -- aliases and the audit log ---------------------------------------------------

    def alias(self, *, name: str, alias: str) -> AliasTarget:
        """What ``alias`` of the model points at: everything a server needs to load it."""
        check_alias(alias)
        with self._factory() as session:
            _model_row(session, name)
            version = repo.alias_version(session, name=name, alias=alias)
            if version is None:
                raise NotFound(f"model '{name}' has no alias '{alias}'")
            return rows.alias_target(_version_row(session, name, version), alias=alias)

    def audit(self, *, name: str, limit: int = 200) -> list[AuditEntry]:
        return self.audit_page(name=name, limit=limit, offset=0)[0]

    def audit_page(self, *, name: str, limit: int, offset: int) -> tuple[list[AuditEntry], int]:
        """One page of the audit log, newest first, and the number of entries in all."""
        with self._factory() as session:
            _model_row(session, name)
            found = repo.list_audit(session, name=name, limit=limit, offset=offset)
            return [rows.audit_entry(row) for row in found], repo.count_audit(session, name=name)

    # -- lineage ---------------------------------------------------------------------

    def lineage(self, *, name: str, version: int) -> Lineage:
        """DESIGN §7 for one version, as one document, with its run and the moves of it."""
        doc = self.version(name=name, version=version)
        record = doc.lineage or {}
        with self._factory() as session:
            run = run_of_request(session, name=name, request_id=doc.request_id)
            moves = [
                rows.audit_entry(a)
                for a in repo.list_audit(session, name=name, limit=10_000)
                if a["to_version"] == version or a["from_version"] == version
            ]
        return Lineage(
            name=name,
            version=version,
            status=doc.status,
            artifact=Artifact(
                uri=doc.artifact_uri,
                sha256=doc.sha256,
                size=doc.size,
                model_schema=doc.model_schema,
            ),
            train_request=record.get("train_request"),
            feature_set=record.get("feature_set"),
            snapshot=record.get("snapshot"),
            model_spec=record.get("model_spec"),
            seed=record.get("seed"),
            params=doc.params,
            metrics=doc.metrics,
            champion=record.get("champion"),
            champion_metrics=doc.champion_metrics,
            project=record.get("project"),
            platform=record.get("platform"),
            environment=record.get("environment"),
            checks=record.get("checks"),
            timings=record.get("timings"),
            run=run,
            decision=PromotionDecision(promoted=doc.promoted, reason=doc.reason),
            alias_history=sorted(moves, key=lambda a: a.id),
        )


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
