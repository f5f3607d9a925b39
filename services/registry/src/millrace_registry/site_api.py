"""REST routes of site groups: a thin transport over ``sites.Sites``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response

from millrace_registry.schemas import SiteAssignment
from millrace_registry.sites import SiteGroupBody, Sites


def get_sites(request: Request) -> Sites:
    runtime = request.app.state.runtime
    sites = getattr(runtime, "sites", None)
    if sites is None:
        sites = runtime.sites = Sites(factory=runtime.factory, manifests=runtime.manifests)
    return sites  # type: ignore[no-any-return]


SitesDep = Annotated[Sites, Depends(get_sites)]
site_router = APIRouter()


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
    return await asyncio.to_thread(sites.assign, group=group, model=model, alias=assignment.alias)
