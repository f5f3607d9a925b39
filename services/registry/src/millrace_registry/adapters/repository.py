"""Queries on the registry's tables; every function works inside the caller's transaction
(``SiteLocks`` opens its own, to hold a site while its manifest is written)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypedDict, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters import site_groups
from millrace_registry.adapters.tables import (
    aliases,
    audit_log,
    model_versions,
    models,
    runs,
    site_deployments,
)

T = TypeVar("T")
JsonObject = dict[str, Any]
# SQLite's per-site locks: one set per process, whichever writer asks
_LOCAL_SITE_LOCKS: dict[str, threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


class VersionColumns(TypedDict):
    """A new row of ``model_versions``."""

    model: str
    version: int
    request_id: str
    status: str
    rejection_reason: str | None
    artifact_uri: str
    sha256: str
    size: int
    model_schema: JsonObject
    metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    champion_version: int | None
    params: JsonObject
    lineage: JsonObject
    promoted: bool
    decision: str
    created_at: datetime
    description: str
    tags: dict[str, str]
    promotion: JsonObject


class VersionChanges(TypedDict, total=False):
    """What an update of a version row may change."""

    status: str
    rejection_reason: str | None
    promoted: bool
    decision: str
    lineage: JsonObject
    description: str
    tags: dict[str, str]


class ModelChanges(TypedDict, total=False):
    description: str
    tags: dict[str, str]


class RunColumns(TypedDict):
    """A row of ``runs`` as its latest report left it."""

    model: str
    run_id: str
    request_id: str
    status: str
    version: int | None
    params: JsonObject
    metrics: dict[str, float]
    timings: dict[str, float]
    failure_reason: str | None
    logs_uri: str | None
    details: JsonObject
    started_at: datetime
    finished_at: datetime | None


def dialect_insert(session: Session, table: sa.Table) -> Any:
    """An INSERT that knows ON CONFLICT on both Postgres and SQLite."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def lock_model(session: Session, *, name: str, description: str = "") -> RowMapping:
    """Create the model if needed and lock its row: version numbers and alias moves of one
    model are serialised (``FOR UPDATE`` on Postgres; SQLite's ``BEGIN IMMEDIATE``)."""
    session.execute(
        dialect_insert(session, models)
        .values(
            name=name,
            description=description,
            created_at=datetime.now(UTC),
        )
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return (
        session.execute(sa.select(models).where(models.c.name == name).with_for_update())
        .mappings()
        .one()
    )


def lock_existing_model(session: Session, *, name: str) -> RowMapping | None:
    return (
        session.execute(sa.select(models).where(models.c.name == name).with_for_update())
        .mappings()
        .one_or_none()
    )


def get_model(session: Session, *, name: str) -> RowMapping | None:
    return session.execute(sa.select(models).where(models.c.name == name)).mappings().one_or_none()


def list_models(session: Session) -> list[RowMapping]:
    return list(session.execute(sa.select(models).order_by(models.c.name)).mappings())


def latest_versions(session: Session) -> dict[str, int]:
    rows = session.execute(
        sa.select(model_versions.c.model, sa.func.max(model_versions.c.version)).group_by(
            model_versions.c.model
        )
    )
    return {row[0]: row[1] for row in rows}


def next_version(session: Session, *, name: str) -> int:
    current = session.execute(
        sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.model == name)
    ).scalar_one()
    return (current or 0) + 1


def insert_version(session: Session, values: VersionColumns) -> None:
    session.execute(model_versions.insert().values(**values))


def version_by_request(session: Session, *, name: str, request_id: str) -> RowMapping | None:
    return (
        session.execute(
            sa.select(model_versions).where(
                model_versions.c.model == name,
                model_versions.c.request_id == request_id,
            )
        )
        .mappings()
        .one_or_none()
    )


def get_version(session: Session, *, name: str, version: int) -> RowMapping | None:
    return (
        session.execute(
            sa.select(model_versions).where(
                model_versions.c.model == name,
                model_versions.c.version == version,
            )
        )
        .mappings()
        .one_or_none()
    )


def list_versions(session: Session, *, name: str) -> list[RowMapping]:
    return list(
        session.execute(
            sa.select(model_versions)
            .where(model_versions.c.model == name)
            .order_by(model_versions.c.version)
        ).mappings()
    )


def aliases_of(session: Session, *, name: str) -> dict[str, int]:
    rows = session.execute(
        sa.select(aliases.c.alias, aliases.c.version)
        .where(aliases.c.model == name)
        .order_by(aliases.c.alias)
    )
    return {row[0]: row[1] for row in rows}


def all_aliases(session: Session) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for model, alias, version in session.execute(
        sa.select(aliases.c.model, aliases.c.alias, aliases.c.version).order_by(
            aliases.c.model, aliases.c.alias
        )
    ):
        found.setdefault(model, {})[alias] = version
    return found


def alias_version(session: Session, *, name: str, alias: str) -> int | None:
    return session.execute(
        sa.select(aliases.c.version).where(aliases.c.model == name, aliases.c.alias == alias)
    ).scalar_one_or_none()


def set_alias(session: Session, *, name: str, alias: str, version: int) -> None:
    now = datetime.now(UTC)
    session.execute(
        dialect_insert(session, aliases)
        .values(
            model=name,
            alias=alias,
            version=version,
            updated_at=now,
        )
        .on_conflict_do_update(
            index_elements=["model", "alias"], set_={"version": version, "updated_at": now}
        )
    )


def add_audit(
    session: Session,
    *,
    model: str,
    action: str,
    actor: str,
    reason: str,
    alias: str | None = None,
    from_version: int | None = None,
    to_version: int | None = None,
) -> None:
    session.execute(
        audit_log.insert().values(
            model=model,
            action=action,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            actor=actor,
            reason=reason,
            at=datetime.now(UTC),
        )
    )


def list_audit(session: Session, *, name: str, limit: int, offset: int = 0) -> list[RowMapping]:
    """A model's audit entries, newest first."""
    return list(
        session.execute(
            sa.select(audit_log)
            .where(audit_log.c.model == name)
            .order_by(audit_log.c.id.desc())
            .limit(limit)
            .offset(offset)
        ).mappings()
    )


def count_audit(session: Session, *, name: str) -> int:
    query = sa.select(sa.func.count()).select_from(audit_log).where(audit_log.c.model == name)
    return int(session.execute(query).scalar_one())


def set_deployment(session: Session, *, site_id: str, model: str, alias: str) -> None:
    now = datetime.now(UTC)
    session.execute(
        dialect_insert(session, site_deployments)
        .values(
            site_id=site_id,
            model=model,
            alias=alias,
            updated_at=now,
        )
        .on_conflict_do_update(
            index_elements=["site_id", "model"], set_={"alias": alias, "updated_at": now}
        )
    )


def deployments_of(session: Session, *, site_id: str) -> list[site_groups.Deployment]:
    """What the site follows, directly or through its groups (``via`` says which)."""
    return site_groups.effective_deployments(session, site_id=site_id)


def sites_following(session: Session, *, model: str, alias: str) -> list[str]:
    return site_groups.sites_following(session, model=model, alias=alias)


def update_model(session: Session, *, name: str, values: ModelChanges) -> None:
    session.execute(models.update().where(models.c.name == name).values(**values))


def update_version(session: Session, *, name: str, version: int, values: VersionChanges) -> None:
    session.execute(
        model_versions.update()
        .where(model_versions.c.model == name, model_versions.c.version == version)
        .values(**values)
    )


def delete_alias(session: Session, *, name: str, alias: str) -> None:
    session.execute(aliases.delete().where(aliases.c.model == name, aliases.c.alias == alias))


def upsert_run(session: Session, *, values: RunColumns) -> None:
    """A run is reported when it starts and again when it ends: the last report wins."""
    changing = {k: v for k, v in values.items() if k not in ("model", "run_id", "started_at")}
    session.execute(
        dialect_insert(session, runs)
        .values(**values)
        .on_conflict_do_update(index_elements=["model", "run_id"], set_=changing)
    )


def get_run(session: Session, *, name: str, run_id: str) -> RowMapping | None:
    return (
        session.execute(sa.select(runs).where(runs.c.model == name, runs.c.run_id == run_id))
        .mappings()
        .one_or_none()
    )


def list_runs(session: Session, *, name: str, status: str | None = None) -> list[RowMapping]:
    query = sa.select(runs).where(runs.c.model == name)
    if status is not None:
        query = query.where(runs.c.status == status)
    return list(session.execute(query.order_by(runs.c.id.desc())).mappings())


class SiteLocks:
    """One holder at a time per site, so whoever reads a site's state and acts on it last
    also read it last. PostgreSQL: a transaction-scoped advisory lock keyed by the site
    (serialises every registry process); reads in READ COMMITTED after the lock see every
    commit before it. SQLite, the single-process dev mode: a per-site lock in this process,
    and the read's transaction ends before the block runs (SQLite's transactions hold the
    whole database)."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._postgres = factory.kw["bind"].dialect.name == "postgresql"

    @contextmanager
    def hold(self, site_id: str, *, read: Callable[[Session], T]) -> Iterator[T]:
        """Hold the site, run ``read`` with it held and yield its result; the site stays
        held until the block ends."""
        if self._postgres:
            with self._factory() as session, session.begin():
                session.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": site_lock_key(site_id)}
                )
                yield read(session)
            return
        with _LOCAL_GUARD:
            local = _LOCAL_SITE_LOCKS.setdefault(site_id, threading.Lock())
        with local:
            with self._factory() as session:
                value = read(session)
            yield value


def site_lock_key(site_id: str) -> int:
    """A stable signed 64-bit advisory-lock key for a site (Python's ``hash`` is salted
    per process, and every registry process must agree)."""
    digest = hashlib.blake2b(f"millrace.site:{site_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
