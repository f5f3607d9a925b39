"""Traffic policies: how serving splits a model's production traffic, kept by the registry
and audited in the model's audit log. Serving reads them at start and polls for changes.

    PUT /v1/models/{name}/traffic   {mode, challenger_alias, percent, key_field, reason, actor}
    GET /v1/models/{name}/traffic   the current policy (mode ``none`` when never set)

Modes: ``none`` (production answers everything); ``canary`` (``percent`` of requests to
the challenger alias, at random unless the request carries a routing key); ``shadow``
(production answers, every request is mirrored to the challenger); ``sticky`` (requests
bucketed by their routing key, ``percent`` of keys to the challenger; keyless requests
stay on production). ``key_field`` says where the routing key comes from: ``key`` (the
``X-Millrace-Routing-Key`` header, the body's ``"key"``, the V2 ``routing_key``
parameter; the default) or ``entity_id`` (the first entity id of the request).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
import structlog
from fastapi import APIRouter, Body, Depends, Request
from millrace_common.db import transaction
from millrace_common.errors import InvalidInput, NotFound
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters import repository as repo
from millrace_registry.adapters.tables import traffic_policies
from millrace_registry.domain import ALIAS_PATTERN, CHALLENGER

log = structlog.get_logger(__name__)

Mode = Literal["none", "canary", "shadow", "sticky"]
KeyField = Literal["key", "entity_id"]
SPLITS = frozenset({"canary", "sticky"})
"""Modes that send a share of production's traffic to the challenger (need ``percent``)."""


class TrafficPolicy(BaseModel):
    """The body of ``PUT /v1/models/{name}/traffic``."""

    model_config = ConfigDict(extra="forbid")
    mode: Mode
    challenger_alias: str = CHALLENGER
    percent: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    key_field: KeyField | None = None
    reason: str = Field(min_length=1, max_length=2000)
    actor: str = Field(default="api", min_length=1, max_length=200)


def check_policy(policy: TrafficPolicy) -> None:
    """The rules pydantic cannot say alone; each failure names its field."""
    if not ALIAS_PATTERN.match(policy.challenger_alias):
        raise InvalidInput(
            f"challenger_alias '{policy.challenger_alias}' must match {ALIAS_PATTERN.pattern}",
            field="challenger_alias",
        )
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

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def set(self, *, name: str, policy: TrafficPolicy) -> dict[str, Any]:
        """Store the policy and audit it, in one transaction."""
        check_policy(policy)
        with transaction(self.factory) as session:
            if repo.lock_existing_model(session, name=name) is None:
                raise NotFound(f"no model '{name}'")
            _upsert(session, name=name, policy=policy)
            repo.add_audit(
                session,
                model=name,
                action=f"traffic_{policy.mode}",
                alias=None if policy.mode == "none" else policy.challenger_alias,
                actor=policy.actor,
                reason=f"{summary(policy)}: {policy.reason}",
            )
            doc = _doc(session, name=name)
        log.info(
            "traffic_policy_set",
            model=name,
            mode=policy.mode,
            percent=policy.percent,
            challenger=policy.challenger_alias,
            actor=policy.actor,
        )
        return doc

    def get(self, *, name: str) -> dict[str, Any]:
        with self.factory() as session:
            if repo.get_model(session, name=name) is None:
                raise NotFound(f"no model '{name}'")
            return _doc(session, name=name)


def _upsert(session: Session, *, name: str, policy: TrafficPolicy) -> None:
    values = policy.model_dump(
        include={"mode", "challenger_alias", "percent", "key_field", "reason", "actor"}
    ) | {"updated_at": datetime.now(UTC)}
    table = traffic_policies
    exists = session.execute(sa.select(table.c.model).where(table.c.model == name)).first()
    if exists is None:  # the model row is locked, so no one inserts meanwhile
        session.execute(table.insert().values(model=name, **values))
    else:
        session.execute(table.update().where(table.c.model == name).values(**values))


def _doc(session: Session, *, name: str) -> dict[str, Any]:
    row = (
        session.execute(sa.select(traffic_policies).where(traffic_policies.c.model == name))
        .mappings()
        .one_or_none()
    )
    challenger = CHALLENGER if row is None else row["challenger_alias"]
    return _policy_doc(name, row) | {
        "challenger_version": repo.alias_version(session, name=name, alias=challenger)
    }


def _policy_doc(name: str, row: RowMapping | None) -> dict[str, Any]:
    if row is None:
        return {
            "model": name,
            "mode": "none",
            "challenger_alias": CHALLENGER,
            "percent": None,
            "key_field": None,
            "reason": None,
            "actor": None,
            "updated_at": None,
        }
    updated = row["updated_at"]
    updated = updated if updated.tzinfo else updated.replace(tzinfo=UTC)
    return {
        "model": name,
        **{
            k: row[k]
            for k in ("mode", "challenger_alias", "percent", "key_field", "reason", "actor")
        },
        "updated_at": updated.isoformat(),
    }


def get_policies(request: Request) -> TrafficPolicies:
    runtime = request.app.state.runtime
    policies = getattr(runtime, "traffic", None)
    if policies is None:
        policies = runtime.traffic = TrafficPolicies(runtime.factory)
    return policies  # type: ignore[no-any-return]


PoliciesDep = Annotated[TrafficPolicies, Depends(get_policies)]
traffic_router = APIRouter(prefix="/v1")


@traffic_router.put("/models/{name}/traffic")
async def set_traffic(
    name: str, policy: Annotated[TrafficPolicy, Body()], policies: PoliciesDep
) -> dict[str, Any]:
    return await asyncio.to_thread(policies.set, name=name, policy=policy)


@traffic_router.get("/models/{name}/traffic")
async def get_traffic(name: str, policies: PoliciesDep) -> dict[str, Any]:
    return await asyncio.to_thread(policies.get, name=name)
