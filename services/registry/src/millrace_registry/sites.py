"""Site deployments, directly or by group, and the per-site view: what a site should run
(its resolved targets) beside what it last reported (its heartbeat).

Every assignment and removal is audited in the model's audit log and rewrites the
manifests of the sites it touches. A removed deployment drops the model from the site's
manifest (or lets a group's deployment of it show through); the edge agent keeps serving
the last model it verified for it (last-known-good) and no longer follows its alias.
"""

from __future__ import annotations

import structlog
from millrace_common.contracts import AliasTarget
from millrace_common.db import transaction
from millrace_common.errors import Conflict, InvalidInput, NotFound
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters import heartbeats, rows
from millrace_registry.adapters import repository as repo
from millrace_registry.adapters import site_groups as groups
from millrace_registry.adapters.manifests import ManifestWriter, manifest_key, site_targets
from millrace_registry.adapters.site_groups import Deployment
from millrace_registry.names import check_alias, check_name
from millrace_registry.schemas import (
    GroupAssigned,
    GroupDeployment,
    GroupUnassigned,
    ReportedState,
    Site,
    SiteDeployment,
    SiteGroup,
    SiteGroupBody,
    SiteUnassigned,
    SyncState,
)
from millrace_registry.search import page

log = structlog.get_logger(__name__)


class Sites:
    def __init__(self, *, factory: sessionmaker[Session], manifests: ManifestWriter) -> None:
        self._factory = factory
        self._manifests = manifests

    def put_group(self, *, group: str, body: SiteGroupBody) -> tuple[SiteGroup, bool]:
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

    # -- a site's own deployments ----------------------------------------------------

    def assign_site(self, *, site_id: str, model: str, alias: str, reason: str, actor: str) -> Site:
        """The site follows ``model``'s ``alias`` (over any group's); its manifest now."""
        check_name(site_id, field="site_id")
        check_alias(alias)
        with transaction(self._factory) as session:
            _check_target(session, model=model, alias=alias)
            repo.set_deployment(session, site_id=site_id, model=model, alias=alias)
            _audit(
                session,
                action="site_assigned",
                where=f"site {site_id}",
                model=model,
                alias=alias,
                reason=reason,
                actor=actor,
            )
        self._write([site_id])
        log.info("site_assigned", site=site_id, model=model, alias=alias, actor=actor)
        return self.site(site_id=site_id)

    def unassign_site(self, *, site_id: str, model: str, reason: str, actor: str) -> SiteUnassigned:
        """Remove the site's own deployment of ``model``; a group's shows through, if any.
        409 when the site follows the model only through a group: remove that instead."""
        _check_reason(reason)
        with transaction(self._factory) as session:
            alias = groups.direct_deployment(session, site_id=site_id, model=model)
            if alias is None:
                raise _no_direct_deployment(session, site_id=site_id, model=model)
            groups.delete_direct_deployment(session, site_id=site_id, model=model)
            _audit(
                session,
                action="site_unassigned",
                where=f"site {site_id}",
                model=model,
                alias=alias,
                reason=reason,
                actor=actor,
            )
        self._write([site_id])
        log.info("site_unassigned", site=site_id, model=model, alias=alias, actor=actor)
        return SiteUnassigned(site_id=site_id, model=model, removed_alias=alias)

    def site(self, *, site_id: str) -> Site:
        """What the site should run (directly or through its groups) and last reported."""
        with self._factory() as session:
            doc = _site_doc(session, site_id=site_id)
        if doc is None:
            raise NotFound(f"no site '{site_id}'", field="site_id")
        return doc

    def sites(self, *, limit: int, offset: int) -> tuple[list[Site], int]:
        """Every site with a deployment, a group or a heartbeat, by id."""
        with self._factory() as session:
            known = sorted(_known_sites(session))
            docs = [_site_doc(session, site_id=site) for site in known]
        return page([d for d in docs if d is not None], limit=limit, offset=offset)

    # -- group deployments ------------------------------------------------------------

    def assign(
        self, *, group: str, model: str, alias: str, reason: str, actor: str
    ) -> GroupAssigned:
        """Every member of ``group`` follows ``model``'s ``alias``; their manifests now."""
        check_alias(alias)
        with transaction(self._factory) as session:
            _lock_group(session, group)
            _check_target(session, model=model, alias=alias)
            groups.set_group_deployment(session, group=group, model=model, alias=alias)
            _audit(
                session,
                action="group_assigned",
                where=f"group {group}",
                model=model,
                alias=alias,
                reason=reason,
                actor=actor,
            )
            sites = groups.members(session, group=group)
        self._write(sites)
        log.info("site_group_assigned", group=group, model=model, alias=alias, sites=len(sites))
        return GroupAssigned(**self.group(group=group).model_dump(), manifests_written=sites)

    def unassign(self, *, group: str, model: str, reason: str, actor: str) -> GroupUnassigned:
        """The group stops deploying ``model``; every member's manifest is rewritten."""
        _check_reason(reason)
        with transaction(self._factory) as session:
            _lock_group(session, group)
            alias = groups.delete_group_deployment(session, group=group, model=model)
            if alias is None:
                raise NotFound(
                    f"site group '{group}' has no deployment of '{model}'", field="model"
                )
            _audit(
                session,
                action="group_unassigned",
                where=f"group {group}",
                model=model,
                alias=alias,
                reason=reason,
                actor=actor,
            )
            sites = groups.members(session, group=group)
        self._write(sites)
        log.info("site_group_unassigned", group=group, model=model, alias=alias, sites=len(sites))
        return GroupUnassigned(
            **self.group(group=group).model_dump(), removed_alias=alias, manifests_written=sites
        )

    def group(self, *, group: str) -> SiteGroup:
        with self._factory() as session:
            row = groups.get_group(session, name=group)
            if row is None:
                raise NotFound(f"no site group '{group}'", field="group")
            return SiteGroup(
                group=group,
                description=row["description"],
                updated_at=rows.utc(row["updated_at"]),
                sites=groups.members(session, group=group),
                deployments=[
                    GroupDeployment(
                        model=d["model"], alias=d["alias"], updated_at=rows.utc(d["updated_at"])
                    )
                    for d in groups.group_deployments(session, group=group)
                ],
            )

    def groups(self) -> list[SiteGroup]:
        with self._factory() as session:
            names = groups.list_groups(session)
        return [self.group(group=name) for name in names]

    def _write(self, sites: list[str]) -> None:
        for site in sites:
            self._manifests.write_site(site_id=site)


def _site_doc(session: Session, *, site_id: str) -> Site | None:
    """What a site should run and what it last reported, model by model (None: unknown)."""
    deployments = repo.deployments_of(session, site_id=site_id)
    member_of = groups.groups_of(session, site_id=site_id)
    targets = site_targets(session, site_id=site_id)
    last = heartbeats.last(session, site=site_id)
    if not deployments and not member_of and last is None:
        return None
    reported = None if last is None else rows.reported_state(last)
    return Site(
        site_id=site_id,
        manifest_key=manifest_key(site_id),
        groups=member_of,
        deployments=[
            SiteDeployment(
                model=d.model, alias=d.alias, via=d.via, updated_at=rows.utc(d.updated_at)
            )
            for d in deployments
        ],
        models=targets,
        reported=reported,
        status=_status(deployments, targets, reported),
    )


def _known_sites(session: Session) -> set[str]:
    return groups.assigned_sites(session) | heartbeats.reporting_sites(session)


def _lock_group(session: Session, group: str) -> None:
    if groups.get_group(session, name=group, lock=True) is None:
        raise NotFound(f"no site group '{group}'", field="group")


def _check_target(session: Session, *, model: str, alias: str) -> None:
    """Only an alias that points at a version can be deployed (a typo deploys nothing)."""
    if repo.get_model(session, name=model) is None:
        raise NotFound(f"no model '{model}'", field="model")
    if repo.alias_version(session, name=model, alias=alias) is None:
        raise NotFound(f"model '{model}' has no alias '{alias}'", field="alias")


def _check_reason(reason: str) -> None:
    if not reason.strip():
        raise InvalidInput("a reason is required", field="reason")


def _no_direct_deployment(session: Session, *, site_id: str, model: str) -> Exception:
    """Why the site has no deployment of its own to remove: 409 naming the group it follows
    the model through, else 404."""
    via = next(
        (d.via for d in repo.deployments_of(session, site_id=site_id) if d.model == model),
        None,
    )
    if via is not None:
        group = via.removeprefix("group:")
        return Conflict(
            f"site '{site_id}' follows '{model}' through site group '{group}'; "
            "remove the group's deployment or assign the site its own",
            field="site_id",
        )
    return NotFound(f"site '{site_id}' has no deployment of '{model}'", field="model")


def _audit(
    session: Session, *, action: str, where: str, model: str, alias: str, reason: str, actor: str
) -> None:
    repo.add_audit(
        session,
        model=model,
        action=action,
        alias=alias,
        actor=actor,
        reason=f"{where}: {reason.strip() or action.replace('_', ' ')}",
    )


def _status(
    deployments: list[Deployment], targets: list[AliasTarget], reported: ReportedState | None
) -> list[SyncState]:
    """Per followed model: the version it should run, the one it reports, in sync or not."""
    should = {t.name: t.version for t in targets}
    runs = {m.name: m.version for m in (reported.models if reported else [])}
    return [
        SyncState(
            model=d.model,
            alias=d.alias,
            should_run=should.get(d.model),
            reports=runs.get(d.model),
            in_sync=d.model in should and runs.get(d.model) == should[d.model],
        )
        for d in deployments
    ]
