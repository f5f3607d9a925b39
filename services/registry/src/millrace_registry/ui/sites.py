"""The fleet's pages: every site, what it should run beside what its last heartbeat
reported; a site with its deployments and its heartbeat history."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from millrace_common.errors import NotFound

from millrace_registry.deps import FleetDep, SitesDep
from millrace_registry.fleet import Fleet
from millrace_registry.schemas import HeartbeatEntry, Site
from millrace_registry.ui.render import MAX_PAGE, PAGE_SIZE, Pager, PageRoute, render

router = APIRouter(prefix="/sites", route_class=PageRoute)


@router.get("")
async def sites_page(
    request: Request,
    sites: SitesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE_SIZE,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    found, total = await asyncio.to_thread(sites.sites, limit=limit, offset=offset)
    return render(
        "sites.html",
        sites=found,
        page=Pager(request=request, offset=offset, limit=limit, total=total),
    )


@router.get("/{site_id}")
async def site_page(site_id: str, sites: SitesDep, fleet: FleetDep) -> HTMLResponse:
    def collect() -> tuple[Site, list[HeartbeatEntry]]:
        return sites.site(site_id=site_id), _history(fleet, site_id)

    site, history = await asyncio.to_thread(collect)
    return render("site.html", site=site, history=history)


def _history(fleet: Fleet, site_id: str) -> list[HeartbeatEntry]:
    """Its recent heartbeats, newest first (none when it was assigned but never reported)."""
    try:
        return fleet.status(site=site_id).history
    except NotFound:
        return []
