"""Routes of site deployments and site groups: which alias of a model each site runs,
directly or through its groups; every change is audited in the model's audit log and
rewrites the manifests (``sites/<site-id>/manifest.json``) of the sites it touches."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from millrace_common.http import errors
from millrace_common.identity import actor_of

from millrace_registry.api.params import PAGED, Actor, Reason, also, paged
from millrace_registry.deps import SiteObjectsDep, SitesDep
from millrace_registry.schemas import (
    GroupAssigned,
    GroupUnassigned,
    Site,
    SiteAssignment,
    SiteGroup,
    SiteGroupBody,
    SiteUnassigned,
)

router = APIRouter(tags=["sites"])


@router.get("/sites", response_model=list[Site], responses=PAGED | errors(422))
async def list_sites(
    sites: SitesDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[Site]:
    """Every site with a deployment, a group or a heartbeat; ``X-Total-Count`` for paging."""
    found, total = await asyncio.to_thread(sites.sites, limit=limit, offset=offset)
    paged(response, total)
    return found


@router.get("/sites/{site_id}", response_model=Site, responses=errors(404, 422))
async def get_site(site_id: str, sites: SitesDep) -> Site:
    """What the site should run (directly or through its groups) and last reported."""
    return await asyncio.to_thread(sites.site, site_id=site_id)


OBJECT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The object's bytes, with its ETag",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    304: {"description": "Unchanged since the ETag sent as If-None-Match"},
}


@router.get(
    "/sites/{site_id}/objects/{key:path}",
    response_class=Response,
    responses=OBJECT | errors(404, 422),
)
async def site_object(
    site_id: str, key: str, objects: SiteObjectsDep, request: Request
) -> Response:
    """What an edge agent fetches with its own credential, needing no key to the object
    store: the site's manifest (``sites/<site>/manifest.json``) and the artifacts it
    names; anything else is a 404."""
    etag = request.headers.get("if-none-match")
    found = await asyncio.to_thread(objects.fetch, site=site_id, key=key, etag=etag)
    if found is None:
        return Response(status_code=304, headers={"ETag": etag or ""})
    data, tag = found
    return Response(data, media_type="application/octet-stream", headers={"ETag": tag})


@router.put("/sites/{site_id}/deployments/{model}", response_model=Site, responses=errors(404, 422))
async def assign_site(
    site_id: str,
    model: str,
    assignment: Annotated[SiteAssignment, Body()],
    sites: SitesDep,
    request: Request,
) -> Site:
    """The site follows ``model``'s alias (over its groups'); its manifest is written now."""
    return await asyncio.to_thread(
        sites.assign_site,
        site_id=site_id,
        model=model,
        alias=assignment.alias,
        reason=assignment.reason,
        actor=actor_of(request, assignment.actor),
    )


@router.delete(
    "/sites/{site_id}/deployments/{model}",
    response_model=SiteUnassigned,
    responses=errors(404, 409, 422),
)
async def unassign_site(
    site_id: str, model: str, sites: SitesDep, reason: Reason, actor: Actor
) -> SiteUnassigned:
    """Remove the site's own deployment (a group's shows through, if any); 409 when it
    follows the model through a group; the edge agent keeps its last-known-good model."""
    return await asyncio.to_thread(
        sites.unassign_site, site_id=site_id, model=model, reason=reason, actor=actor
    )


@router.get("/site-groups", response_model=list[SiteGroup])
async def list_groups(sites: SitesDep) -> list[SiteGroup]:
    return await asyncio.to_thread(sites.groups)


@router.put(
    "/site-groups/{group}",
    response_model=SiteGroup,
    responses=also(201, SiteGroup, "Created") | errors(422),
)
async def put_group(
    group: str, body: Annotated[SiteGroupBody, Body()], sites: SitesDep, response: Response
) -> SiteGroup:
    """Create a group (201) or replace its member list; sites that join or leave get
    their manifest rewritten."""
    found, created = await asyncio.to_thread(sites.put_group, group=group, body=body)
    response.status_code = 201 if created else 200
    return found


@router.get("/site-groups/{group}", response_model=SiteGroup, responses=errors(404, 422))
async def get_group(group: str, sites: SitesDep) -> SiteGroup:
    return await asyncio.to_thread(sites.group, group=group)


@router.put(
    "/site-groups/{group}/deployments/{model}",
    response_model=GroupAssigned,
    responses=errors(404, 422),
)
async def assign_group(
    group: str,
    model: str,
    assignment: Annotated[SiteAssignment, Body()],
    sites: SitesDep,
    request: Request,
) -> GroupAssigned:
    """Every site of the group follows ``model``'s alias; each manifest is written now."""
    return await asyncio.to_thread(
        sites.assign,
        group=group,
        model=model,
        alias=assignment.alias,
        reason=assignment.reason,
        actor=actor_of(request, assignment.actor),
    )


@router.delete(
    "/site-groups/{group}/deployments/{model}",
    response_model=GroupUnassigned,
    responses=errors(404, 422),
)
async def unassign_group(
    group: str, model: str, sites: SitesDep, reason: Reason, actor: Actor
) -> GroupUnassigned:
    """The group stops deploying ``model``; every member's manifest is rewritten now."""
    return await asyncio.to_thread(
        sites.unassign, group=group, model=model, reason=reason, actor=actor
    )
