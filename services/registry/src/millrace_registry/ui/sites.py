"""The fleet's pages: every site, what it should run beside what its last heartbeat
reported; a site with its deployments and its heartbeat history."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from millrace_common.errors import NotFound

from millrace_registry.fleet import Fleet, FleetDep
from millrace_registry.site_api import SitesDep
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
        sites=[doc | {"in_sync": _in_sync(doc)} for doc in found],
        page=Pager(request=request, offset=offset, limit=limit, total=total),
    )


@router.get("/{site_id}")
async def site_page(site_id: str, sites: SitesDep, fleet: FleetDep) -> HTMLResponse:
    def collect() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return sites.site(site_id=site_id), _history(fleet, site_id)

    doc, history = await asyncio.to_thread(collect)
    return render("site.html", site=doc | {"in_sync": _in_sync(doc)}, history=history)


def _in_sync(site: dict[str, Any]) -> bool | None:
    """Every followed model at the version it should run (None: the site follows none)."""
    status = site["status"]
    return all(s["in_sync"] for s in status) if status else None


def _history(fleet: Fleet, site_id: str) -> list[dict[str, Any]]:
    """Its recent heartbeats, newest first (none when it was assigned but never reported)."""
    try:
        return list(fleet.status(site=site_id)["history"])
    except NotFound:
        return []
