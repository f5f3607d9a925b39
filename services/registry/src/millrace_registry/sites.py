"""Site deployments by group, and the per-site view: what a site should run (its resolved
targets, directly or through its groups) beside what it last reported (its heartbeat).

    PUT /v1/site-groups/{group}                      {"sites": [...], "description": ""}
    GET /v1/site-groups, GET /v1/site-groups/{group}
    PUT /v1/site-groups/{group}/deployments/{model}  {"alias": "production"}
    GET /v1/sites/{site}                             targets, reported state, in sync or not
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog
from millrace_common.db import transaction
from millrace_common.errors import NotFound
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry import views
from millrace_registry.adapters import repository as repo
from millrace_registry.adapters import site_groups as groups
from millrace_registry.adapters.manifests import ManifestWriter, manifest_key, site_targets
from millrace_registry.domain import check_alias, check_name
from millrace_registry.fleet import site_heartbeats

log = structlog.get_logger(__name__)


class SiteGroupBody(BaseModel):
    """A group's whole member list (it replaces the previous one)."""

    model_config = ConfigDict(extra="forbid")
    sites: list[str] = Field(max_length=10_000)
    description: str = Field(default="", max_length=5000)


class Sites:
    def __init__(self, *, factory: sessionmaker[Session], manifests: ManifestWriter) -> None:
        self._factory = factory
        self._manifests = manifests

    def put_group(self, *, group: str, body: SiteGroupBody) -> tuple[dict[str, Any], bool]:
        """Set a group's members; sites that join or leave get their manifest rewritten."""
        check_name(group, field="group")
        for index, site in enumerate(body.sites):
            check_name(site, field=f"sites.{index}")
        with transaction(self._factory) as session:
            created = groups.put_group(session, name=group, description=body.description)
            before = groups.members(session, group=group)
            groups.set_members(session, group=group, sites=body.sites)
        self._write(sorted(set(before) | set(body.sites)))
        log.info("site_group_set", group=group, sites=len(set(body.sites)), created=created)
        return self.group(group=group), created

    def assign(self, *, group: str, model: str, alias: str) -> dict[str, Any]:
        """Every member of ``group`` follows ``model``'s ``alias``; their manifests now."""
        check_alias(alias)
        with transaction(self._factory) as session:
            if groups.get_group(session, name=group, lock=True) is None:
                raise NotFound(f"no site group '{group}'", field="group")
            if repo.get_model(session, name=model) is None:
                raise NotFound(f"no model '{model}'", field="model")
            groups.set_group_deployment(session, group=group, model=model, alias=alias)
            sites = groups.members(session, group=group)
        self._write(sites)
        log.info("site_group_assigned", group=group, model=model, alias=alias, sites=len(sites))
        return self.group(group=group) | {"manifests_written": sites}

    def group(self, *, group: str) -> dict[str, Any]:
        with self._factory() as session:
            row = groups.get_group(session, name=group)
            if row is None:
                raise NotFound(f"no site group '{group}'", field="group")
            return {
                "group": group,
                "description": row["description"],
                "updated_at": views.utc(row["updated_at"]),
                "sites": groups.members(session, group=group),
                "deployments": [
                    {
                        "model": d["model"],
                        "alias": d["alias"],
                        "updated_at": views.utc(d["updated_at"]),
                    }
                    for d in groups.group_deployments(session, group=group)
                ],
            }

    def groups(self) -> list[dict[str, Any]]:
        with self._factory() as session:
            names = groups.list_groups(session)
        return [self.group(group=name) for name in names]

    def _write(self, sites: list[str]) -> None:
        for site in sites:
            self._manifests.write_site(site_id=site)


def site_view(factory: sessionmaker[Session], *, site_id: str) -> dict[str, Any]:
    """What a site should run and what it last reported, model by model."""
    with factory() as session:
        deployments = repo.deployments_of(session, site_id=site_id)
        member_of = groups.groups_of(session, site_id=site_id)
        targets = site_targets(session, site_id=site_id)
        reported = _last_heartbeat(session, site_id=site_id)
    if not deployments and not member_of and reported is None:
        raise NotFound(f"no site '{site_id}'")
    return {
        "site_id": site_id,
        "manifest_key": manifest_key(site_id),
        "groups": member_of,
        "deployments": [
            {
                "model": d["model"],
                "alias": d["alias"],
                "via": d["via"],
                "updated_at": views.utc(d["updated_at"]),
            }
            for d in deployments
        ],
        "models": [t.model_dump(mode="json", by_alias=True) for t in targets],
        "reported": reported,
        "status": _status(deployments, targets, reported),
    }


def _last_heartbeat(session: Session, *, site_id: str) -> dict[str, Any] | None:
    row = (
        session.execute(
            sa.select(site_heartbeats)
            .where(site_heartbeats.c.site == site_id)
            .order_by(site_heartbeats.c.sent_at.desc())
            .limit(1)
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        return None
    return dict(row["state"]) | {"received_at": views.utc(row["received_at"]).isoformat()}


def _status(
    deployments: list[dict[str, Any]], targets: list[Any], reported: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Per followed model: the version it should run, the one it reports, in sync or not."""
    should = {t.name: t.version for t in targets}
    runs = {m["name"]: m["version"] for m in (reported or {}).get("models", [])}
    return [
        {
            "model": d["model"],
            "alias": d["alias"],
            "should_run": should.get(d["model"]),
            "reports": runs.get(d["model"]),
            "in_sync": d["model"] in should and runs.get(d["model"]) == should[d["model"]],
        }
        for d in deployments
    ]
