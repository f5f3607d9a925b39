"""A version's page: its lineage document (DESIGN §7) laid out to read, with the raw JSON
and the commands that promote it or roll production back to it."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from millrace_registry.deps import CatalogDep
from millrace_registry.names import PRODUCTION
from millrace_registry.schemas import Lineage, ModelVersion, RegisteredModel
from millrace_registry.ui.render import PageRoute, base_url, render, version_commands

router = APIRouter(prefix="/models/{name}/versions", route_class=PageRoute)


@router.get("/{version}")
async def version_page(
    request: Request, name: str, version: int, catalog: CatalogDep
) -> HTMLResponse:
    def collect() -> tuple[RegisteredModel, ModelVersion, Lineage]:
        lineage = catalog.lineage(name=name, version=version)
        return catalog.model(name=name), catalog.version(name=name, version=version), lineage

    model, doc, lineage = await asyncio.to_thread(collect)
    commands = version_commands(
        base=base_url(request),
        name=name,
        version=version,
        status=doc.status,
        production=model.aliases.get(PRODUCTION),
    )
    return render(
        "version.html",
        model=model,
        doc=doc,
        lineage=lineage,
        metrics=_metric_rows(lineage.metrics, lineage.champion_metrics),
        commands=commands,
    )


def _metric_rows(
    metrics: dict[str, float], champion: dict[str, float] | None
) -> list[tuple[str, float | None, float | None, float | None]]:
    """Each metric beside the champion's on the same holdout, and the difference."""
    rows = []
    for key in sorted(set(metrics) | set(champion or {})):
        mine, theirs = metrics.get(key), (champion or {}).get(key)
        delta = mine - theirs if mine is not None and theirs is not None else None
        rows.append((key, mine, theirs, delta))
    return rows
