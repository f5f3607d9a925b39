"""The models page: every registered model, its aliases, latest version and production's
key metric, searched with the filters of ``GET /v1/models``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from millrace_registry.catalog import Catalog
from millrace_registry.deps import CatalogDep
from millrace_registry.names import PRODUCTION
from millrace_registry.schemas import RegisteredModel
from millrace_registry.search import parse_tags
from millrace_registry.ui.render import MAX_PAGE, PAGE_SIZE, Pager, PageRoute, render

router = APIRouter(route_class=PageRoute)
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0)]


@dataclass(frozen=True)
class KeyMetric:
    """Production's value of the metric its promotion rule compares."""

    version: int
    metric: str | None
    value: float | None


@router.get("")
async def models_page(
    request: Request,
    catalog: CatalogDep,
    name: Annotated[str | None, Query(max_length=120)] = None,
    tag: Annotated[list[str] | None, Query()] = None,
    alias: Annotated[str | None, Query(max_length=63)] = None,
    limit: Limit = PAGE_SIZE,
    offset: Offset = 0,
) -> HTMLResponse:
    name, alias = name or None, alias or None  # an empty box in the form filters nothing
    tags = [t for t in tag or [] if t]
    found, total, key_metrics = await asyncio.to_thread(
        _models, catalog=catalog, name=name, tags=tags, alias=alias, limit=limit, offset=offset
    )
    return render(
        "models.html",
        models=found,
        key_metrics=key_metrics,
        filters={"name": name or "", "tags": tags, "alias": alias or ""},
        page=Pager(request=request, offset=offset, limit=limit, total=total),
    )


def _models(
    *,
    catalog: Catalog,
    name: str | None,
    tags: list[str],
    alias: str | None,
    limit: int,
    offset: int,
) -> tuple[list[RegisteredModel], int, dict[str, KeyMetric]]:
    found, total = catalog.search_models(
        name=name, tags=parse_tags(tags), alias=alias, limit=limit, offset=offset
    )
    key_metrics = {
        model.name: key for model in found if (key := _key_metric(catalog, model)) is not None
    }
    return found, total, key_metrics


def _key_metric(catalog: Catalog, model: RegisteredModel) -> KeyMetric | None:
    """Production's value of the metric its promotion rule compares (None: no production)."""
    version = model.aliases.get(PRODUCTION)
    if version is None:
        return None
    found = catalog.version(name=model.name, version=version)
    metric = found.promotion.metric if found.promotion else None
    if metric not in found.metrics:  # a rule-less version: show its first metric
        metric = next(iter(sorted(found.metrics)), None)
    value = found.metrics.get(metric) if metric is not None else None
    return KeyMetric(version=version, metric=metric, value=value)
