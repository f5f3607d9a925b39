"""A model's pages: its overview with the versions table, its runs with the comparison of
selected runs, and its audit log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from millrace_common.errors import InvalidInput

from millrace_registry.adapters.rows import utc
from millrace_registry.api.monitoring import DEFAULT_RANGE, MonitoringOut, window_length
from millrace_registry.catalog import Catalog
from millrace_registry.deps import CatalogDep, MonitoringDep, RunsDep, TrafficDep
from millrace_registry.monitoring import Report
from millrace_registry.names import PRODUCTION, RunStatus, VersionStatus
from millrace_registry.schemas import (
    AuditEntry,
    ModelTraffic,
    ModelVersion,
    RegisteredModel,
    RunComparison,
    TrainingRun,
)
from millrace_registry.traffic import TrafficPolicies
from millrace_registry.ui import charts
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
    catalog: CatalogDep,
    traffic: TrafficDep,
    status: Annotated[VersionStatus | None, Query()] = None,
    limit: Limit = PAGE_SIZE,
    offset: Offset = 0,
) -> HTMLResponse:
    model, policy, versions, total = await asyncio.to_thread(
        _overview,
        catalog=catalog,
        traffic=traffic,
        name=name,
        status=status,
        limit=limit,
        offset=offset,
    )
    production = model.aliases.get(PRODUCTION)
    base = base_url(request)
    commands = {
        version.version: version_commands(
            base=base,
            name=name,
            version=version.version,
            status=version.status,
            production=production,
        )
        for version in versions
    }
    return render(
        "model.html",
        model=model,
        traffic=policy,
        versions=versions,
        commands=commands,
        status=status or "",
        statuses=get_args(VersionStatus),
        page=Pager(request=request, offset=offset, limit=limit, total=total),
        tab="versions",
    )


def _overview(
    *,
    catalog: Catalog,
    traffic: TrafficPolicies,
    name: str,
    status: VersionStatus | None,
    limit: int,
    offset: int,
) -> tuple[RegisteredModel, ModelTraffic, list[ModelVersion], int]:
    model = catalog.model(name=name)
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
    return model, traffic.get(name=name), versions, total


@router.get("/runs")
async def runs_page(
    request: Request,
    name: str,
    catalog: CatalogDep,
    runs: RunsDep,
    status: Annotated[RunStatus | None, Query()] = None,
    limit: Limit = PAGE_SIZE,
    offset: Offset = 0,
) -> HTMLResponse:
    def collect() -> tuple[RegisteredModel, list[TrainingRun], int]:
        model = catalog.model(name=name)
        found, total = runs.runs(name=name, status=status, limit=limit, offset=offset)
        return model, found, total

    model, found, total = await asyncio.to_thread(collect)
    return render(
        "runs.html",
        model=model,
        runs=found,
        status=status or "",
        statuses=get_args(RunStatus),
        page=Pager(request=request, offset=offset, limit=limit, total=total),
        tab="runs",
    )


@router.get("/compare")
async def compare_page(
    name: str,
    catalog: CatalogDep,
    runs: RunsDep,
    run: Annotated[list[str] | None, Query()] = None,
) -> HTMLResponse:
    def collect() -> tuple[RegisteredModel, RunComparison]:
        model = catalog.model(name=name)
        return model, runs.compare(name=name, run_ids=list(dict.fromkeys(run or [])))

    model, compared = await asyncio.to_thread(collect)
    sections = {
        part: _differences(rows)
        for part, rows in (
            ("metrics", compared.metrics),
            ("params", compared.params),
            ("timings", compared.timings),
        )
    }
    return render("compare.html", model=model, runs=compared.runs, sections=sections, tab="runs")


def _differences(rows: dict[str, list[Any]]) -> list[tuple[str, list[Any], bool]]:
    """Each row with whether its values differ between the runs."""
    return [(key, values, len({repr(v) for v in values}) > 1) for key, values in rows.items()]


@router.get("/audit")
async def audit_page(
    request: Request,
    name: str,
    catalog: CatalogDep,
    limit: Limit = PAGE_SIZE,
    offset: Offset = 0,
) -> HTMLResponse:
    def collect() -> tuple[RegisteredModel, list[AuditEntry], int]:
        entries, total = catalog.audit_page(name=name, limit=limit, offset=offset)
        return catalog.model(name=name), entries, total

    model, entries, total = await asyncio.to_thread(collect)
    return render(
        "audit.html",
        model=model,
        entries=entries,
        page=Pager(request=request, offset=offset, limit=limit, total=total),
        tab="audit",
    )


@router.get("/monitoring")
async def monitoring_page(
    name: str,
    catalog: CatalogDep,
    monitoring: MonitoringDep,
    since: Annotated[datetime | None, Query()] = None,
    window: Annotated[str | None, Query(max_length=10)] = None,
    metric: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    """Live quality: the metric per window and by version as charts (inline SVG), the
    versions' numbers, and each other alias against production."""
    until = datetime.now(UTC)
    start = utc(since) if since is not None else until - DEFAULT_RANGE
    if start >= until:
        raise InvalidInput("since must be before now", field="since")
    seconds = window_length(window) if window else None

    def collect() -> tuple[RegisteredModel, Report]:
        model = catalog.model(name=name)
        return model, monitoring.report(name=name, since=start, until=until, window=seconds)

    model, report = await asyncio.to_thread(collect)
    found = sorted({k for w in report.overall for k in w.metrics})
    chosen = _shown_metric(metric, found, default=report.policy.metric)
    return render(
        "monitoring.html",
        model=model,
        report=MonitoringOut.of(report),
        over_time=charts.quality_over_time(report.windows, chosen),
        by_version=charts.quality_by_version(report.overall, chosen),
        drift=[
            chart
            for version, psi in sorted(report.drift.items(), reverse=True)
            if (chart := charts.drift_by_feature(psi, version)) is not None
        ],
        metric=chosen,
        metrics=found or [chosen],
        since=start.isoformat(timespec="seconds"),
        window=window or "",
        tab="monitoring",
    )


def _shown_metric(asked: str | None, found: list[str], *, default: str) -> str:
    """The metric asked for when the report has it, else the model's, else any."""
    for name in (asked, default):
        if name in found:
            return name  # type: ignore[return-value]
    return found[0] if found else default
