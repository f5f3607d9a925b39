"""The models page: every registered model, its aliases, latest version and production's
key metric, searched with the filters of ``GET /v1/models``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from millrace_registry.api import CatalogDep, RegistryDep
from millrace_registry.catalog import Catalog
from millrace_registry.domain import PRODUCTION
from millrace_registry.filters import parse_tags
from millrace_registry.service import Registry
from millrace_registry.ui.render import MAX_PAGE, PAGE_SIZE, Pager, PageRoute, render

router = APIRouter(route_class=PageRoute)
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0)]


@router.get("")
async def models_page(
    request: Request,
    catalog: CatalogDep,
    registry: RegistryDep,
    name: Annotated[str | None, Query(max_length=120)] = None,
    tag: Annotated[list[str] | None, Query()] = None,
    alias: Annotated[str | None, Query(max_length=63)] = None,
    limit: Limit = PAGE_SIZE,
    offset: Offset = 0,
) -> HTMLResponse:
    name, alias = name or None, alias or None  # an empty box in the form filters nothing
    tags = [t for t in tag or [] if t]
    found, total = await asyncio.to_thread(
        _models,
        catalog=catalog,
        registry=registry,
        name=name,
        tags=tags,
        alias=alias,
        limit=limit,
        offset=offset,
    )
    return render(
        "models.html",
        models=found,
        filters={"name": name or "", "tags": tags, "alias": alias or ""},
        page=Pager(request=request, offset=offset, limit=limit, total=total),
    )


def _models(
    *,
    catalog: Catalog,
    registry: Registry,
    name: str | None,
    tags: list[str],
    alias: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    found, total = catalog.search_models(
        name=name, tags=parse_tags(tags), alias=alias, limit=limit, offset=offset
    )
    return [doc | {"key_metric": _key_metric(registry, doc)} for doc in found], total


def _key_metric(registry: Registry, model: dict[str, Any]) -> dict[str, Any] | None:
    """Production's value of the metric its promotion rule compares (None: no production)."""
    version = model["aliases"].get(PRODUCTION)
    if version is None:
        return None
    doc = registry.version(name=model["name"], version=version)
    metric = (doc["promotion"] or {}).get("metric")
    if metric not in doc["metrics"]:  # a rule-less version: show its first metric
        metric = next(iter(sorted(doc["metrics"])), None)
    return {"version": version, "metric": metric, "value": doc["metrics"].get(metric)}
