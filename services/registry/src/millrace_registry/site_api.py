"""REST routes of site deployments and site groups: a thin transport over ``sites.Sites``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from millrace_registry.schemas import SiteAssignment
from millrace_registry.sites import SiteGroupBody, Sites


def get_sites(request: Request) -> Sites:
    runtime = request.app.state.runtime
    sites = getattr(runtime, "sites", None)
    if sites is None:
        sites = runtime.sites = Sites(factory=runtime.factory, manifests=runtime.manifests)
    return sites  # type: ignore[no-any-return]


SitesDep = Annotated[Sites, Depends(get_sites)]
Reason = Annotated[str, Query(min_length=1, max_length=2000, description="why (audited)")]
Actor = Annotated[str, Query(min_length=1, max_length=200)]
site_router = APIRouter()


@site_router.get("/sites")
async def list_sites(
    sites: SitesDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """Every site with a deployment, a group or a heartbeat; ``X-Total-Count`` for paging."""
    found, total = await asyncio.to_thread(sites.sites, limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    return found


@site_router.get("/sites/{site_id}")
async def get_site(site_id: str, sites: SitesDep) -> dict[str, Any]:
    return await asyncio.to_thread(sites.site, site_id=site_id)


@site_router.put("/sites/{site_id}/deployments/{model}")
async def assign_site(
    site_id: str, model: str, assignment: Annotated[SiteAssignment, Body()], sites: SitesDep
) -> dict[str, Any]:
    """The site follows ``model``'s alias (over its groups'); its manifest is written now."""
    return await asyncio.to_thread(
        sites.assign_site,
        site_id=site_id,
        model=model,
        alias=assignment.alias,
        reason=assignment.reason,
        actor=assignment.actor,
    )


@site_router.delete("/sites/{site_id}/deployments/{model}")
async def unassign_site(
    site_id: str, model: str, sites: SitesDep, reason: Reason, actor: Actor = "api"
) -> dict[str, Any]:
    """Remove the site's own deployment; 409 when it follows the model through a group."""
    return await asyncio.to_thread(
        sites.unassign_site, site_id=site_id, model=model, reason=reason, actor=actor
    )


@site_router.get("/site-groups")
async def list_groups(sites: SitesDep) -> list[dict[str, Any]]:
    return await asyncio.to_thread(sites.groups)


@site_router.put("/site-groups/{group}")
async def put_group(
    group: str, body: Annotated[SiteGroupBody, Body()], sites: SitesDep, response: Response
) -> dict[str, Any]:
    """Create a group or replace its member list (201 when created)."""
    doc, created = await asyncio.to_thread(sites.put_group, group=group, body=body)
    response.status_code = 201 if created else 200
    return doc


@site_router.get("/site-groups/{group}")
async def get_group(group: str, sites: SitesDep) -> dict[str, Any]:
    return await asyncio.to_thread(sites.group, group=group)


@site_router.put("/site-groups/{group}/deployments/{model}")
async def assign_group(
    group: str, model: str, assignment: Annotated[SiteAssignment, Body()], sites: SitesDep
) -> dict[str, Any]:
    """Every site of the group follows ``model``'s alias; each manifest is written now."""
    return await asyncio.to_thread(
        sites.assign,
        group=group,
        model=model,
        alias=assignment.alias,
        reason=assignment.reason,
        actor=assignment.actor,
    )


@site_router.delete("/site-groups/{group}/deployments/{model}")
async def unassign_group(
    group: str, model: str, sites: SitesDep, reason: Reason, actor: Actor = "api"
) -> dict[str, Any]:
    """The group stops deploying ``model``; every member's manifest is rewritten now."""
    return await asyncio.to_thread(
        sites.unassign, group=group, model=model, reason=reason, actor=actor
    )
