"""Traffic policies: how serving splits a model's production traffic, kept by the registry
and audited in the model's audit log. Serving reads them at start and polls for changes.

Modes: ``none`` (production answers everything); ``canary`` (``percent`` of requests to
the challenger alias, at random unless the request carries a routing key); ``shadow``
(production answers, every request is mirrored to the challenger); ``sticky`` (requests
bucketed by their routing key, ``percent`` of keys to the challenger; keyless requests
stay on production). ``key_field`` says where the routing key comes from: ``key`` (the
``X-Millrace-Routing-Key`` header, the body's ``"key"``, the V2 ``routing_key``
parameter; the default) or ``entity_id`` (the first entity id of the request).
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from millrace_common.db import transaction
from millrace_common.errors import InvalidInput, NotFound
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters import repository as repo
from millrace_registry.adapters import rows
from millrace_registry.adapters import traffic_policies as policies
from millrace_registry.names import CHALLENGER, check_alias
from millrace_registry.schemas import ModelTraffic, TrafficPolicy

log = structlog.get_logger(__name__)

SPLITS = frozenset({"canary", "sticky"})
"""Modes that send a share of production's traffic to the challenger (need ``percent``)."""


def check_policy(policy: TrafficPolicy) -> None:
    """The rules pydantic cannot say alone; each failure names its field."""
    check_alias(policy.challenger_alias, field="challenger_alias")
    if not policy.reason.strip():
        raise InvalidInput("a reason is required", field="reason")
    if policy.mode in SPLITS and policy.percent is None:
        raise InvalidInput(f"mode '{policy.mode}' needs a percent (0-100)", field="percent")
    if policy.mode not in SPLITS and policy.percent is not None:
        raise InvalidInput(f"mode '{policy.mode}' takes no percent", field="percent")
    if policy.key_field is not None and policy.mode not in SPLITS:
        raise InvalidInput(f"mode '{policy.mode}' takes no key_field", field="key_field")


def summary(policy: TrafficPolicy) -> str:
    """One line for the audit log, e.g. ``canary 25% to 'challenger'``."""
    if policy.mode == "none":
        return "no traffic policy: production answers every request"
    if policy.mode == "shadow":
        return f"shadow to '{policy.challenger_alias}'"
    by = f" by {policy.key_field}" if policy.key_field else ""
    return f"{policy.mode} {policy.percent:g}% to '{policy.challenger_alias}'{by}"


class TrafficPolicies:
    """Synchronous use cases (the HTTP layer runs them in worker threads)."""

    def __init__(self, *, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def set(self, *, name: str, policy: TrafficPolicy) -> ModelTraffic:
        """Store the policy and audit it, in one transaction."""
        check_policy(policy)
        with transaction(self._factory) as session:
            if repo.lock_existing_model(session, name=name) is None:
                raise NotFound(f"no model '{name}'")
            policies.put(
                session,
                name=name,
                mode=policy.mode,
                challenger_alias=policy.challenger_alias,
                percent=policy.percent,
                key_field=policy.key_field,
                reason=policy.reason,
                actor=policy.actor,
                updated_at=datetime.now(UTC),
            )
            repo.add_audit(
                session,
                model=name,
                action=f"traffic_{policy.mode}",
                alias=None if policy.mode == "none" else policy.challenger_alias,
                actor=policy.actor,
                reason=f"{summary(policy)}: {policy.reason}",
            )
            found = _in_force(session, name=name)
        log.info(
            "traffic_policy_set",
            model=name,
            mode=policy.mode,
            percent=policy.percent,
            challenger=policy.challenger_alias,
            actor=policy.actor,
        )
        return found

    def get(self, *, name: str) -> ModelTraffic:
        with self._factory() as session:
            if repo.get_model(session, name=name) is None:
                raise NotFound(f"no model '{name}'")
            return _in_force(session, name=name)


def _in_force(session: Session, *, name: str) -> ModelTraffic:
    """The model's policy (mode ``none`` when never set), with its challenger's version."""
    row = policies.get(session, name=name)
    challenger = CHALLENGER if row is None else row["challenger_alias"]
    version = repo.alias_version(session, name=name, alias=challenger)
    if row is None:
        return ModelTraffic(
            model=name,
            mode="none",
            challenger_alias=CHALLENGER,
            percent=None,
            key_field=None,
            reason=None,
            actor=None,
            updated_at=None,
            challenger_version=version,
        )
    return rows.model_traffic(name, row, challenger_version=version)
