"""Queries on site groups, and what a site runs once its groups are taken into account.

A site follows a model's alias directly (``site_deployments``) or through a group it
belongs to (``site_group_deployments``). A direct assignment wins over a group's for the
same model; between two groups, the one whose name sorts first wins, so the answer is
always the same."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from millrace_registry.adapters.tables import (
    site_deployments,
    site_group_deployments,
    site_group_members,
    site_groups,
)


@dataclass(frozen=True)
class Deployment:
    """What a site follows for one model, and where from: ``site`` (its own assignment)
    or ``group:<name>``."""

    site_id: str
    model: str
    alias: str
    updated_at: datetime
    via: str


def get_group(session: Session, *, name: str, lock: bool = False) -> RowMapping | None:
    query = sa.select(site_groups).where(site_groups.c.name == name)
    return session.execute(query.with_for_update() if lock else query).mappings().one_or_none()


def list_groups(session: Session) -> list[str]:
    return list(
        session.execute(sa.select(site_groups.c.name).order_by(site_groups.c.name)).scalars()
    )


def put_group(session: Session, *, name: str, description: str) -> bool:
    """Create or update the group (locked for the rest of the transaction); True if new."""
    exists = get_group(session, name=name, lock=True) is not None
    now = datetime.now(UTC)
    if exists:
        session.execute(
            site_groups.update()
            .where(site_groups.c.name == name)
            .values(description=description, updated_at=now)
        )
    else:
        session.execute(
            site_groups.insert().values(name=name, description=description, updated_at=now)
        )
    return not exists


def members(session: Session, *, group: str) -> list[str]:
    return list(
        session.execute(
            sa.select(site_group_members.c.site_id)
            .where(site_group_members.c.group_name == group)
            .order_by(site_group_members.c.site_id)
        ).scalars()
    )


def set_members(session: Session, *, group: str, sites: list[str]) -> None:
    session.execute(site_group_members.delete().where(site_group_members.c.group_name == group))
    if sites:
        session.execute(
            site_group_members.insert(),
            [{"group_name": group, "site_id": site} for site in sorted(set(sites))],
        )


def groups_of(session: Session, *, site_id: str) -> list[str]:
    return list(
        session.execute(
            sa.select(site_group_members.c.group_name)
            .where(site_group_members.c.site_id == site_id)
            .order_by(site_group_members.c.group_name)
        ).scalars()
    )


def group_deployments(session: Session, *, group: str) -> list[RowMapping]:
    return list(
        session.execute(
            sa.select(site_group_deployments)
            .where(site_group_deployments.c.group_name == group)
            .order_by(site_group_deployments.c.model)
        ).mappings()
    )


def set_group_deployment(session: Session, *, group: str, model: str, alias: str) -> None:
    now = datetime.now(UTC)
    table = site_group_deployments
    found = session.execute(
        sa.select(table.c.model).where(table.c.group_name == group, table.c.model == model)
    ).scalar_one_or_none()
    if found is None:
        session.execute(
            table.insert().values(group_name=group, model=model, alias=alias, updated_at=now)
        )
    else:
        session.execute(
            table.update()
            .where(table.c.group_name == group, table.c.model == model)
            .values(alias=alias, updated_at=now)
        )


def delete_group_deployment(session: Session, *, group: str, model: str) -> str | None:
    """Remove the group's deployment of ``model``; the alias it followed, if it had one."""
    table = site_group_deployments
    alias = session.execute(
        sa.select(table.c.alias).where(table.c.group_name == group, table.c.model == model)
    ).scalar_one_or_none()
    if alias is not None:
        session.execute(table.delete().where(table.c.group_name == group, table.c.model == model))
    return alias


def direct_deployment(session: Session, *, site_id: str, model: str) -> str | None:
    """The alias the site itself was assigned for ``model`` (not through a group)."""
    return session.execute(
        sa.select(site_deployments.c.alias).where(
            site_deployments.c.site_id == site_id, site_deployments.c.model == model
        )
    ).scalar_one_or_none()


def delete_direct_deployment(session: Session, *, site_id: str, model: str) -> None:
    session.execute(
        site_deployments.delete().where(
            site_deployments.c.site_id == site_id, site_deployments.c.model == model
        )
    )


def assigned_sites(session: Session) -> set[str]:
    """Sites with a deployment of their own or a group membership."""
    direct = session.execute(sa.select(site_deployments.c.site_id).distinct()).scalars()
    members = session.execute(sa.select(site_group_members.c.site_id).distinct()).scalars()
    return set(direct) | set(members)


def effective_deployments(session: Session, *, site_id: str) -> list[Deployment]:
    """What ``site_id`` follows, one entry per model, with ``via`` saying where from."""
    found: dict[str, Deployment] = {}
    for direct in session.execute(
        sa.select(site_deployments).where(site_deployments.c.site_id == site_id)
    ).mappings():
        found[direct["model"]] = Deployment(
            site_id=site_id,
            model=direct["model"],
            alias=direct["alias"],
            updated_at=direct["updated_at"],
            via="site",
        )
    for group in groups_of(session, site_id=site_id):
        for row in group_deployments(session, group=group):
            found.setdefault(
                row["model"],
                Deployment(
                    site_id=site_id,
                    model=row["model"],
                    alias=row["alias"],
                    updated_at=row["updated_at"],
                    via=f"group:{group}",
                ),
            )
    return [found[model] for model in sorted(found)]


def sites_following(session: Session, *, model: str, alias: str) -> list[str]:
    """Every site whose effective deployment of ``model`` is ``alias``."""
    direct = session.execute(
        sa.select(site_deployments.c.site_id).where(site_deployments.c.model == model)
    ).scalars()
    grouped = session.execute(
        sa.select(site_group_members.c.site_id)
        .join(
            site_group_deployments,
            site_group_deployments.c.group_name == site_group_members.c.group_name,
        )
        .where(site_group_deployments.c.model == model)
    ).scalars()
    candidates = sorted(set(direct) | set(grouped))
    return [
        site
        for site in candidates
        if any(
            d.model == model and d.alias == alias
            for d in effective_deployments(session, site_id=site)
        )
    ]
