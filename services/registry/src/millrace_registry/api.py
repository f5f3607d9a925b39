"""REST routes: a thin transport over the use cases in ``service``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from millrace_registry.catalog import Catalog
from millrace_registry.filters import parse_metric, parse_tags
from millrace_registry.schemas import (
    AliasMove,
    ChecksReport,
    ModelUpdate,
    Registration,
    Rollback,
    RunReport,
    VersionUpdate,
)
from millrace_registry.service import Registry
from millrace_registry.site_api import site_router

VersionStatus = Literal["pending", "ready", "rejected", "archived"]
RunStatus = Literal["running", "succeeded", "rejected", "failed"]


def get_registry(request: Request) -> Registry:
    return request.app.state.runtime.registry  # type: ignore[no-any-return]


RegistryDep = Annotated[Registry, Depends(get_registry)]
router = APIRouter(prefix="/v1")


def get_catalog(request: Request) -> Catalog:
    runtime = request.app.state.runtime
    catalog = getattr(runtime, "catalog", None)
    if catalog is None:
        catalog = runtime.catalog = Catalog(factory=runtime.factory, registry=runtime.registry)
    return catalog  # type: ignore[no-any-return]


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]
TagFilter = Annotated[list[str] | None, Query(description="key or key=value; repeatable")]


@router.get("/models")
async def list_models(
    catalog: CatalogDep,
    response: Response,
    name: Annotated[str | None, Query(max_length=120)] = None,
    tag: TagFilter = None,
    alias: Annotated[str | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    """Models, searched by part of the name, tags and alias; ``X-Total-Count`` for paging."""
    found, total = await asyncio.to_thread(
        catalog.search_models,
        name=name,
        tags=parse_tags(tag or []),
        alias=alias,
        limit=limit,
        offset=offset,
    )
    response.headers["X-Total-Count"] = str(total)
    return found


@router.get("/models/{name}")
async def get_model(name: str, registry: RegistryDep) -> dict[str, Any]:
    return await asyncio.to_thread(registry.model, name=name)


@router.post("/models/{name}/versions", status_code=201)
async def register_version(
    name: str,
    registration: Annotated[Registration, Body()],
    registry: RegistryDep,
    response: Response,
) -> dict[str, Any]:
    doc, created = await asyncio.to_thread(registry.register, name=name, registration=registration)
    if not created:
        response.status_code = 200
    return doc


@router.get("/models/{name}/versions")
async def list_versions(
    name: str,
    registry: RegistryDep,
    catalog: CatalogDep,
    response: Response,
    request_id: Annotated[str | None, Query()] = None,
    status: Annotated[VersionStatus | None, Query()] = None,
    tag: TagFilter = None,
    metric: Annotated[str | None, Query(description="e.g. f1>=0.8")] = None,
    alias: Annotated[str | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    """Versions, searched by status, tags, a metric condition and alias."""
    if request_id is not None:
        return await asyncio.to_thread(registry.versions, name=name, request_id=request_id)
    found, total = await asyncio.to_thread(
        catalog.search_versions,
        name=name,
        status=status,
        tags=parse_tags(tag or []),
        metric=parse_metric(metric) if metric is not None else None,
        alias=alias,
        limit=limit,
        offset=offset,
    )
    response.headers["X-Total-Count"] = str(total)
    return found


@router.get("/models/{name}/versions/{version}")
async def get_version(name: str, version: int, registry: RegistryDep) -> dict[str, Any]:
    return await asyncio.to_thread(registry.version, name=name, version=version)


@router.post("/models/{name}/versions/{version}/checks")
async def record_checks(
    name: str, version: int, report: Annotated[ChecksReport, Body()], registry: RegistryDep
) -> dict[str, Any]:
    """A pending version's checks: it becomes ready (then the promotion rule applies) or
    rejected with the reason; 409 unless it is pending."""
    return await asyncio.to_thread(
        registry.record_checks, name=name, version=version, report=report
    )


@router.get("/models/{name}/aliases/{alias}")
async def get_alias(name: str, alias: str, registry: RegistryDep) -> dict[str, Any]:
    target = await asyncio.to_thread(registry.alias, name=name, alias=alias)
    return target.model_dump(mode="json", by_alias=True)


@router.post("/models/{name}/aliases/{alias}")
async def move_alias(
    name: str, alias: str, move: Annotated[AliasMove, Body()], registry: RegistryDep
) -> dict[str, Any]:
    return await asyncio.to_thread(
        registry.move_alias,
        name=name,
        alias=alias,
        version=move.version,
        reason=move.reason,
        actor=move.actor,
    )


@router.get("/models/{name}/audit")
async def get_audit(
    name: str, registry: RegistryDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict[str, Any]]:
    return await asyncio.to_thread(registry.audit, name=name, limit=limit)


@router.patch("/models/{name}")
async def update_model(
    name: str, update: Annotated[ModelUpdate, Body()], catalog: CatalogDep
) -> dict[str, Any]:
    return await asyncio.to_thread(catalog.update_model, name=name, update=update)


@router.patch("/models/{name}/versions/{version}")
async def update_version(
    name: str, version: int, update: Annotated[VersionUpdate, Body()], catalog: CatalogDep
) -> dict[str, Any]:
    return await asyncio.to_thread(
        catalog.update_version, name=name, version=version, update=update
    )


@router.delete("/models/{name}/aliases/{alias}")
async def delete_alias(
    name: str,
    alias: str,
    catalog: CatalogDep,
    reason: Annotated[str, Query(min_length=1, max_length=2000)],
    actor: Annotated[str, Query(min_length=1, max_length=200)] = "api",
) -> dict[str, Any]:
    return await asyncio.to_thread(
        catalog.delete_alias, name=name, alias=alias, reason=reason, actor=actor
    )


@router.post("/models/{name}/rollback")
async def rollback(
    name: str, body: Annotated[Rollback, Body()], catalog: CatalogDep
) -> dict[str, Any]:
    return await asyncio.to_thread(
        catalog.rollback, name=name, version=body.version, reason=body.reason, actor=body.actor
    )


@router.get("/models/{name}/versions/{version}/lineage")
async def get_lineage(name: str, version: int, catalog: CatalogDep) -> dict[str, Any]:
    return await asyncio.to_thread(catalog.lineage, name=name, version=version)


@router.get("/models/{name}/runs")
async def list_runs(
    name: str,
    catalog: CatalogDep,
    response: Response,
    status: Annotated[RunStatus | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    found, total = await asyncio.to_thread(
        catalog.runs, name=name, status=status, limit=limit, offset=offset
    )
    response.headers["X-Total-Count"] = str(total)
    return found


@router.get("/models/{name}/runs/compare")
async def compare_runs(
    name: str, catalog: CatalogDep, run: Annotated[list[str], Query(min_length=2)]
) -> dict[str, Any]:
    return await asyncio.to_thread(catalog.compare, name=name, run_ids=run)


@router.get("/models/{name}/runs/{run_id}")
async def get_run(name: str, run_id: str, catalog: CatalogDep) -> dict[str, Any]:
    return await asyncio.to_thread(catalog.run, name=name, run_id=run_id)


@router.put("/models/{name}/runs/{run_id}")
async def record_run(
    name: str, run_id: str, report: Annotated[RunReport, Body()], catalog: CatalogDep
) -> dict[str, Any]:
    return await asyncio.to_thread(catalog.record_run, name=name, run_id=run_id, report=report)


router.include_router(site_router)
