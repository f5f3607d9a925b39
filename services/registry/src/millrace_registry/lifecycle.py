"""A version's lifecycle and the aliases that point at it: registered (pending, ready or
rejected), its checks recorded, promoted by the rule or by an audited move, rolled back;
aliases deleted. Each change runs in one transaction with its audit rows, and stages the
``model-published`` event of every alias it moves in the outbox of that transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from millrace_common.contracts import EVENT_TYPES, MODEL_PUBLISHED
from millrace_common.db import transaction
from millrace_common.errors import Conflict, InvalidInput, NotFound
from millrace_common.outbox import add_event
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters import repository as repo
from millrace_registry.adapters import rows, traffic_policies
from millrace_registry.adapters.repository import VersionChanges, VersionColumns
from millrace_registry.adapters.tables import outbox
from millrace_registry.artifacts import Artifacts
from millrace_registry.names import (
    CHALLENGER,
    CHAMPION,
    PENDING,
    PRODUCTION,
    READY,
    REJECTED,
    check_alias,
    check_name,
    run_outcome,
)
from millrace_registry.promotion_rule import Champion, Decision, PromotionRule, decide
from millrace_registry.schemas import (
    AliasDeleted,
    AliasMoved,
    ChecksReport,
    ModelVersion,
    Registration,
    TrafficPolicy,
)

log = structlog.get_logger(__name__)
PROTECTED_ALIASES = (PRODUCTION, CHAMPION)
"""Serving and sites follow them, and nothing would tell them to stop: moved, never deleted."""


class Lifecycle:
    """Synchronous use cases (the HTTP layer runs them in worker threads); ``on_commit``
    is called after each commit that staged events, to wake the outbox relay."""

    def __init__(
        self,
        *,
        factory: sessionmaker[Session],
        artifacts: Artifacts,
        on_commit: Callable[[], None] = lambda: None,
        canary_start: Callable[[str], float | None] = lambda _name: None,
    ) -> None:
        self._factory = factory
        self._artifacts = artifacts
        self._on_commit = on_commit
        self._canary_start = canary_start

    # -- versions --------------------------------------------------------------------

    def register(self, *, name: str, registration: Registration) -> tuple[ModelVersion, bool]:
        """Add a version and apply the promotion rule; ``False`` when it was a re-send.
        The artifact is checked first (in the store, its size and digest as claimed),
        outside the transaction: hashing a large model must not hold the model's lock."""
        check_name(name, field="name")
        _check_registration(registration)
        self._artifacts.verify(
            uri=registration.artifact_uri, sha256=registration.sha256, size=registration.size
        )
        with transaction(self._factory) as session:
            repo.lock_model(session, name=name, description=registration.description)
            existing = repo.version_by_request(
                session, name=name, request_id=registration.request_id
            )
            if existing is not None:
                _finish_run(session, registration=registration, row=existing)
                return self._version_doc(session, existing), False
            row = self._add_version(session, name=name, registration=registration)
            _finish_run(session, registration=registration, row=row)
            doc = self._version_doc(session, row)
        self._on_commit()
        log.info(
            "version_registered",
            model=name,
            version=doc.version,
            status=doc.status,
            promoted=doc.promoted,
            reason=doc.reason,
        )
        return doc, True

    def _add_version(
        self, session: Session, *, name: str, registration: Registration
    ) -> RowMapping:
        version = repo.next_version(session, name=name)
        decision = self._decide(session, name=name, registration=registration)
        repo.insert_version(session, _version_values(name, version, registration, decision))
        row = repo.get_version(session, name=name, version=version)
        assert row is not None
        actor = registration.actor
        if registration.status == PENDING:
            repo.add_audit(
                session,
                model=name,
                action="registered_pending",
                actor=actor,
                reason=decision.reason,
                to_version=version,
            )
        elif registration.status == REJECTED:
            repo.add_audit(
                session,
                model=name,
                action="rejected",
                actor=actor,
                reason=decision.reason,
                to_version=version,
            )
        else:
            self._apply(session, row=row, decision=decision, actor=actor)
        return row

    def _apply(self, session: Session, *, row: RowMapping, decision: Decision, actor: str) -> None:
        """A ready version takes production and champion, or becomes the challenger; a
        winner of a model whose spec asks for a canary becomes the challenger with the
        first step's share of production's traffic (the monitor ramps it)."""
        first_step = self._canary_start(row["model"]) if decision.promote else None
        if (
            first_step is not None
            and repo.alias_version(session, name=row["model"], alias=PRODUCTION) is not None
        ):
            self._start_canary(session, row=row, decision=decision, actor=actor, percent=first_step)
            return
        if decision.promote:
            for alias in (PRODUCTION, CHAMPION):
                self._move(
                    session,
                    row=row,
                    alias=alias,
                    reason=decision.reason,
                    actor=actor,
                    action="promoted",
                )
        else:
            self._move(
                session,
                row=row,
                alias=CHALLENGER,
                reason=decision.reason,
                actor=actor,
                action="not_promoted",
            )

    def _start_canary(
        self, session: Session, *, row: RowMapping, decision: Decision, actor: str, percent: float
    ) -> None:
        reason = f"{decision.reason}; a canary at {percent:g}% first (monitoring.canary)"
        self._move(
            session, row=row, alias=CHALLENGER, reason=reason, actor=actor, action="canary_started"
        )
        policy = TrafficPolicy(
            mode="canary",
            challenger_alias=CHALLENGER,
            percent=percent,
            reason=reason[:2000],
            actor="monitor",
        )
        traffic_policies.put(
            session,
            name=row["model"],
            mode=policy.mode,
            challenger_alias=policy.challenger_alias,
            percent=policy.percent,
            key_field=None,
            reason=policy.reason,
            actor=policy.actor,
            updated_at=datetime.now(UTC),
        )
        repo.add_audit(
            session,
            model=row["model"],
            action="traffic_canary",
            alias=CHALLENGER,
            actor=policy.actor,
            reason=f"canary {percent:g}% to '{CHALLENGER}': {reason}",
        )

    def _decide(self, session: Session, *, name: str, registration: Registration) -> Decision:
        if registration.status == REJECTED:
            return Decision(False, f"rejected: {registration.rejection_reason}")
        if registration.status == PENDING:
            return Decision(False, "pending: its checks are not recorded yet")
        return _rule_decision(
            session,
            name=name,
            rule=registration.promotion.rule(),
            metrics=registration.metrics,
            champion_metrics=registration.champion_metrics,
            champion_version=registration.champion_version,
        )

    def record_checks(self, *, name: str, version: int, report: ChecksReport) -> ModelVersion:
        """A pending version's checks: rejected with the reason, or ready and then judged by
        the promotion rule it was registered with (against production now)."""
        if not report.passed and not (report.reason or "").strip():
            raise InvalidInput("failed checks need a reason", field="reason")
        with transaction(self._factory) as session:
            if repo.lock_existing_model(session, name=name) is None:
                raise NotFound(f"no model '{name}'")
            row = self._version_row(session, name, version)
            if row["status"] != PENDING:
                raise Conflict(
                    f"v{version} of '{name}' is {row['status']}; checks are "
                    "recorded once, on a pending version",
                    field="status",
                )
            decision = self._checked(session, row=row, report=report)
            row = self._version_row(session, name, version)
            if report.passed:
                self._apply(session, row=row, decision=decision, actor=report.actor)
            else:
                repo.add_audit(
                    session,
                    model=name,
                    action="rejected",
                    actor=report.actor,
                    reason=decision.reason,
                    to_version=version,
                )
            doc = self._version_doc(session, row)
        self._on_commit()
        log.info(
            "checks_recorded",
            model=name,
            version=version,
            status=doc.status,
            promoted=doc.promoted,
            reason=doc.reason,
        )
        return doc

    @staticmethod
    def _checked(session: Session, *, row: RowMapping, report: ChecksReport) -> Decision:
        """Write the outcome of the checks on the version row; the decision it leads to."""
        if report.passed:
            rule = PromotionRule(**(row["promotion"] or {"metric": ""}))
            decision = _rule_decision(
                session,
                name=row["model"],
                rule=rule,
                metrics=row["metrics"],
                champion_metrics=row["champion_metrics"],
                champion_version=row["champion_version"],
            )
        else:
            decision = Decision(False, f"rejected: {report.reason}")
        checks = (row["lineage"] or {}).get("checks") or {}
        changes: VersionChanges = {
            "status": READY if report.passed else REJECTED,
            "rejection_reason": None if report.passed else report.reason,
            "promoted": decision.promote,
            "decision": decision.reason,
            "lineage": (row["lineage"] or {})
            | {"checks": checks | report.details | {"passed": report.passed}},
        }
        repo.update_version(session, name=row["model"], version=row["version"], values=changes)
        return decision

    def _move(
        self, session: Session, *, row: RowMapping, alias: str, reason: str, actor: str, action: str
    ) -> int | None:
        """Point ``alias`` at ``row``: alias row, audit row and outbox event, one transaction."""
        name, version = row["model"], row["version"]
        previous = repo.alias_version(session, name=name, alias=alias)
        repo.set_alias(session, name=name, alias=alias, version=version)
        repo.add_audit(
            session,
            model=name,
            action=action,
            alias=alias,
            from_version=previous,
            to_version=version,
            actor=actor,
            reason=reason,
        )
        event = rows.published(row, alias=alias, reason=reason)
        add_event(
            session,
            outbox,
            topic=MODEL_PUBLISHED,
            key=f"{name}:{alias}",
            event_id=event.event_id,
            value=event,
            ce_type=EVENT_TYPES[MODEL_PUBLISHED],
        )
        return previous

    @staticmethod
    def _version_doc(session: Session, row: RowMapping) -> ModelVersion:
        return rows.model_version(row, aliases=repo.aliases_of(session, name=row["model"]))

    # -- aliases ---------------------------------------------------------------------

    def move_alias(
        self, *, name: str, alias: str, version: int, reason: str, actor: str
    ) -> AliasMoved:
        """A manual, audited alias move (promotion, rollback, staging …)."""
        check_alias(alias)
        if not reason.strip():
            raise InvalidInput("a reason is required", field="reason")
        with transaction(self._factory) as session:
            if repo.lock_existing_model(session, name=name) is None:
                raise NotFound(f"no model '{name}'")
            row = self._version_row(session, name, version)
            if row["status"] != READY:
                raise Conflict(f"version {version} of '{name}' is {row['status']}", field="version")
            previous = repo.alias_version(session, name=name, alias=alias)
            # champion mirrors production, so the next candidate faces what runs
            for moved in (alias, CHAMPION) if alias == PRODUCTION else (alias,):
                if repo.alias_version(session, name=name, alias=moved) != version:
                    self._move(
                        session,
                        row=row,
                        alias=moved,
                        reason=reason,
                        actor=actor,
                        action="alias_moved",
                    )
            target = rows.alias_target(row, alias=alias)
        if previous != version:
            self._on_commit()
            log.info(
                "alias_moved",
                model=name,
                alias=alias,
                version=version,
                previous=previous,
                actor=actor,
            )
        return AliasMoved(
            **target.model_dump(),
            previous_version=previous,
            moved=previous != version,
            reason=reason,
        )

    def delete_alias(self, *, name: str, alias: str, reason: str, actor: str) -> AliasDeleted:
        """Remove an alias (audited); production and champion can only be moved."""
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
        return AliasDeleted(name=name, alias=alias, deleted_version=version, reason=reason)

    def rollback(self, *, name: str, version: int | None, reason: str, actor: str) -> AliasMoved:
        """Production back to an earlier ready version, through the audited alias move."""
        target = self._rollback_target(name=name, version=version)
        return self.move_alias(
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
            row = self._version_row(session, name, version)
        if version >= current:
            raise Conflict(f"v{version} is not earlier than production v{current}", field="version")
        if row["status"] != READY:
            raise Conflict(f"v{version} is {row['status']}, not ready", field="version")
        return version

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _version_row(session: Session, name: str, version: int) -> RowMapping:
        row = repo.get_version(session, name=name, version=version)
        if row is None:
            if repo.get_model(session, name=name) is None:
                raise NotFound(f"no model '{name}'")
            raise NotFound(f"model '{name}' has no version {version}")
        return row


def _rule_decision(
    session: Session,
    *,
    name: str,
    rule: PromotionRule,
    metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    champion_version: int | None,
) -> Decision:
    """The promotion rule against what holds production now."""
    current = repo.alias_version(session, name=name, alias=PRODUCTION)
    champion = (
        None
        if current is None
        else Champion(version=current, metrics=champion_metrics, evaluated_version=champion_version)
    )
    return decide(rule=rule, candidate=metrics, champion=champion)


def _finish_run(session: Session, *, registration: Registration, row: RowMapping) -> None:
    """Finish the run the registration carries, in the transaction that holds its version.

    A re-send (the version exists) finishes its run the same way: that attempt ended in
    the version already registered for its train request."""
    run, outcome = registration.run, run_outcome(row["status"])
    if run is None or outcome is None:
        return
    repo.upsert_run(
        session,
        values={
            "model": row["model"],
            "run_id": run.run_id,
            "request_id": row["request_id"],
            "status": outcome,
            "version": row["version"],
            "params": row["params"],
            "metrics": row["metrics"],
            "timings": run.timings,
            "failure_reason": row["rejection_reason"],
            "logs_uri": run.logs_uri,
            "details": run.details,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
        },
    )


def _check_registration(registration: Registration) -> None:
    if registration.status == PENDING and registration.run is not None:
        raise InvalidInput(
            "a pending version's run cannot be finished yet: register it ready or rejected",
            field="run",
        )
    if registration.status == REJECTED and not (registration.rejection_reason or "").strip():
        raise InvalidInput("a rejected version needs a rejection_reason", field="rejection_reason")
    metric = registration.promotion.metric
    if registration.status == READY and metric not in registration.metrics:
        raise InvalidInput(
            f"metrics lack the promotion metric '{metric}'", field=f"metrics.{metric}"
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


def _version_values(
    name: str, version: int, registration: Registration, decision: Decision
) -> VersionColumns:
    data = registration.model_dump(mode="json", by_alias=True)
    return {
        "model": name,
        "version": version,
        "request_id": registration.request_id,
        "status": registration.status,
        "rejection_reason": registration.rejection_reason,
        "artifact_uri": registration.artifact_uri,
        "sha256": registration.sha256,
        "size": registration.size,
        "model_schema": data["schema"],
        "metrics": registration.metrics,
        "champion_metrics": registration.champion_metrics,
        "champion_version": registration.champion_version,
        "params": data["params"],
        "lineage": data["lineage"],
        "promoted": decision.promote,
        "decision": decision.reason,
        "created_at": datetime.now(UTC),
        "description": registration.description,
        "tags": registration.tags,
        "promotion": data["promotion"],
    }
