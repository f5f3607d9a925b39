"""A model's pages: its overview with the versions table, its runs with the comparison of
selected runs, and its audit log."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from millrace_registry.api import CatalogDep, RegistryDep, RunStatus, VersionStatus
from millrace_registry.catalog import Catalog
from millrace_registry.domain import PRODUCTION
from millrace_registry.service import Registry
from millrace_registry.traffic import PoliciesDep, TrafficPolicies
from millrace_registry.ui.render import (
    MAX_PAGE,
    PAGE_SIZE,
    Pager,
    PageRoute,
    base_url,
    render,
    version_commands,
)

router = APIRouter(prefix="/models/{name}", route_class=PageRoute)
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0)]


@router.get("")
async def model_page(
    request: Request,
    name: str,
    registry: RegistryDep,
    catalog: CatalogDep,
    policies: PoliciesDep,
    status: Annotated[VersionStatus | None, Query()] = None,
    limit: Limit = PAGE_SIZE,
    offset: Offset = 0,
) -> HTMLResponse:
    model, traffic, versions, total = await asyncio.to_thread(
        _overview,
        registry=registry,
        catalog=catalog,
        policies=policies,
        name=name,
        status=status,
        limit=limit,
        offset=offset,
    )
    production = model["aliases"].get(PRODUCTION)
    base = base_url(request)
    for version in versions:
        version["commands"] = version_commands(
            base=base,
            name=name,
            version=version["version"],
            status=version["status"],
            production=production,
        )
    return render(
        "model.html",
        model=model,
        traffic=traffic,
        versions=versions,
        status=status or "",
        statuses=get_args(VersionStatus),
        page=Pager(request=request, offset=offset, limit=limit, total=total),
        tab="versions",
    )


def _overview(
    *,
    registry: Registry,
    catalog: Catalog,
    policies: TrafficPolicies,
    name: str,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], int]:
    model = registry.model(name=name)
    versions, total = catalog.search_versions(
        name=name,
        status=status,
        tags={},
        metric=None,
        alias=None,
        limit=limit,
        offset=offset,
        newest_first=True,
    )
    return model, policies.get(name=name), versions, total


@router.get("/runs")
async def runs_page(
    request: Request,
    name: str,
    registry: RegistryDep,
    catalog: CatalogDep,
    status: Annotated[RunStatus | None, Query()] = None,
    limit: Limit = PAGE_SIZE,
    offset: Offset = 0,
) -> HTMLResponse:
    def collect() -> tuple[dict[str, Any], list[dict[str, Any]], int]:
        model = registry.model(name=name)
        runs, total = catalog.runs(name=name, status=status, limit=limit, offset=offset)
        return model, runs, total

    model, runs, total = await asyncio.to_thread(collect)
    return render(
        "runs.html",
        model=model,
        runs=runs,
        status=status or "",
        statuses=get_args(RunStatus),
        page=Pager(request=request, offset=offset, limit=limit, total=total),
        tab="runs",
    )


@router.get("/compare")
async def compare_page(
    name: str,
    registry: RegistryDep,
    catalog: CatalogDep,
    run: Annotated[list[str] | None, Query()] = None,
) -> HTMLResponse:
    def collect() -> tuple[dict[str, Any], dict[str, Any]]:
        model = registry.model(name=name)
        return model, catalog.compare(name=name, run_ids=list(dict.fromkeys(run or [])))

    model, compared = await asyncio.to_thread(collect)
    sections = {
        part: [(key, values, len({repr(v) for v in values}) > 1) for key, values in rows.items()]
        for part, rows in ((p, compared[p]) for p in ("metrics", "params", "timings"))
    }
    return render("compare.html", model=model, runs=compared["runs"], sections=sections, tab="runs")


@router.get("/audit")
async def audit_page(
    request: Request,
    name: str,
    registry: RegistryDep,
    limit: Limit = PAGE_SIZE,
    offset: Offset = 0,
) -> HTMLResponse:
    def collect() -> tuple[dict[str, Any], list[dict[str, Any]], int]:
        entries, total = registry.audit_page(name=name, limit=limit, offset=offset)
        return registry.model(name=name), entries, total

    model, entries, total = await asyncio.to_thread(collect)
    return render(
        "audit.html",
        model=model,
        entries=entries,
        page=Pager(request=request, offset=offset, limit=limit, total=total),
        tab="audit",
    )
