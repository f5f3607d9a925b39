"""Routes of registered models: their versions (registered, checked, edited), aliases
(read, moved, deleted, production rolled back), audit log and lineage."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response
from millrace_common.contracts import AliasTarget
from millrace_common.errors import Forbidden
from millrace_common.http import errors
from millrace_common.identity import ADMIN, TRAINER, actor_of, principal_of

from millrace_registry.api.params import (
    BYTES,
    PAGED,
    Actor,
    Limit,
    Offset,
    Reason,
    TagFilter,
    VersionPath,
    also,
    paged,
    signed,
)
from millrace_registry.deps import ArtifactsDep, CatalogDep, LifecycleDep
from millrace_registry.names import READY, VersionStatus
from millrace_registry.schemas import (
    AliasDeleted,
    AliasMove,
    AliasMoved,
    AuditEntry,
    ChecksReport,
    Lineage,
    ModelUpdate,
    ModelVersion,
    RegisteredModel,
    Registration,
    Rollback,
    VersionUpdate,
)
from millrace_registry.search import parse_metric, parse_tags

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=list[RegisteredModel], responses=PAGED | errors(422))
async def list_models(
    catalog: CatalogDep,
    response: Response,
    name: Annotated[str | None, Query(max_length=120, description="part of the name")] = None,
    tag: TagFilter = None,
    alias: Annotated[str | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[RegisteredModel]:
    """Models, searched by part of the name, tags and alias; ``X-Total-Count`` for paging."""
    found, total = await asyncio.to_thread(
        catalog.search_models,
        name=name,
        tags=parse_tags(tag or []),
        alias=alias,
        limit=limit,
        offset=offset,
    )
    paged(response, total)
    return found


@router.get("/{name}", response_model=RegisteredModel, responses=errors(404, 422))
async def get_model(name: str, catalog: CatalogDep) -> RegisteredModel:
    return await asyncio.to_thread(catalog.model, name=name)


@router.patch("/{name}", response_model=RegisteredModel, responses=errors(404, 422))
async def update_model(
    name: str, update: Annotated[ModelUpdate, Body()], catalog: CatalogDep, request: Request
) -> RegisteredModel:
    """Its description and/or tags (``tags`` replaces the whole map); audited."""
    return await asyncio.to_thread(catalog.update_model, name=name, update=signed(request, update))


@router.post(
    "/{name}/versions",
    status_code=201,
    response_model=ModelVersion,
    responses=also(200, ModelVersion, "A re-send: the version it registered") | errors(422),
)
async def register_version(
    name: str,
    registration: Annotated[Registration, Body()],
    lifecycle: LifecycleDep,
    response: Response,
    request: Request,
) -> ModelVersion:
    """A new version, judged by the promotion rule at once unless it is pending; a re-send
    of the same ``request_id`` answers the version it registered (200). Only the
    trainer's identity registers a version ``ready`` (its checks ran); anyone else's is
    ``pending`` or ``rejected``."""
    caller = principal_of(request)
    if caller is not None and registration.status == READY and not caller.roles & {TRAINER, ADMIN}:
        raise Forbidden(
            "only the trainer registers a version ready: register it pending, and its "
            "checks make it ready",
            field="status",
        )
    version, created = await asyncio.to_thread(
        lifecycle.register, name=name, registration=signed(request, registration)
    )
    if not created:
        response.status_code = 200
    return version


@router.get(
    "/{name}/versions", response_model=list[ModelVersion], responses=PAGED | errors(404, 422)
)
async def list_versions(
    name: str,
    catalog: CatalogDep,
    response: Response,
    request_id: Annotated[str | None, Query(description="the version of this request")] = None,
    status: Annotated[VersionStatus | None, Query()] = None,
    tag: TagFilter = None,
    metric: Annotated[str | None, Query(description="e.g. f1>=0.8")] = None,
    alias: Annotated[str | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[ModelVersion]:
    """Versions, oldest first, searched by status, tags, a metric condition and alias."""
    if request_id is not None:
        return await asyncio.to_thread(catalog.versions, name=name, request_id=request_id)
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
    paged(response, total)
    return found


@router.get("/{name}/versions/{version}", response_model=ModelVersion, responses=errors(404, 422))
async def get_version(name: str, version: VersionPath, catalog: CatalogDep) -> ModelVersion:
    return await asyncio.to_thread(catalog.version, name=name, version=version)


@router.patch(
    "/{name}/versions/{version}", response_model=ModelVersion, responses=errors(404, 409, 422)
)
async def update_version(
    name: str,
    version: VersionPath,
    update: Annotated[VersionUpdate, Body()],
    catalog: CatalogDep,
    request: Request,
) -> ModelVersion:
    """Its description, tags and/or status (ready ↔ archived; 409 while it holds an
    alias); audited."""
    return await asyncio.to_thread(
        catalog.update_version, name=name, version=version, update=signed(request, update)
    )


@router.post(
    "/{name}/versions/{version}/checks",
    response_model=ModelVersion,
    responses=errors(404, 409, 422),
)
async def record_checks(
    name: str,
    version: VersionPath,
    report: Annotated[ChecksReport, Body()],
    lifecycle: LifecycleDep,
    request: Request,
) -> ModelVersion:
    """A pending version's checks: it becomes ready (then the promotion rule applies) or
    rejected with the reason; 409 unless it is pending."""
    return await asyncio.to_thread(
        lifecycle.record_checks, name=name, version=version, report=signed(request, report)
    )


@router.get(
    "/{name}/versions/{version}/lineage", response_model=Lineage, responses=errors(404, 422)
)
async def get_lineage(name: str, version: VersionPath, catalog: CatalogDep) -> Lineage:
    return await asyncio.to_thread(catalog.lineage, name=name, version=version)


@router.get(
    "/{name}/versions/{version}/artifact",
    response_class=Response,
    responses=BYTES | errors(404, 422, 503),
)
async def get_artifact(
    name: str, version: VersionPath, catalog: CatalogDep, artifacts: ArtifactsDep
) -> Response:
    """The version's ONNX file, read from the registry's store with its sha256 checked
    (also in ``X-Millrace-Sha256``): what batch scoring and a notebook load."""
    doc = await asyncio.to_thread(catalog.version, name=name, version=version)
    data = await asyncio.to_thread(artifacts.read, uri=doc.artifact_uri, sha256=doc.sha256)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "X-Millrace-Sha256": doc.sha256,
            "Content-Disposition": f'attachment; filename="{name}-v{version}.onnx"',
        },
    )


@router.get("/{name}/aliases/{alias}", response_model=AliasTarget, responses=errors(404, 422))
async def get_alias(name: str, alias: str, catalog: CatalogDep) -> AliasTarget:
    """What the alias points at: everything a server needs to load that version."""
    return await asyncio.to_thread(catalog.alias, name=name, alias=alias)


@router.post("/{name}/aliases/{alias}", response_model=AliasMoved, responses=errors(404, 409, 422))
async def move_alias(
    name: str,
    alias: str,
    move: Annotated[AliasMove, Body()],
    lifecycle: LifecycleDep,
    request: Request,
) -> AliasMoved:
    """Point the alias at a ready version (audited, published); moving production moves
    champion with it."""
    return await asyncio.to_thread(
        lifecycle.move_alias,
        name=name,
        alias=alias,
        version=move.version,
        reason=move.reason,
        actor=actor_of(request, move.actor),
    )


@router.delete(
    "/{name}/aliases/{alias}", response_model=AliasDeleted, responses=errors(404, 409, 422)
)
async def delete_alias(
    name: str, alias: str, lifecycle: LifecycleDep, reason: Reason, actor: Actor
) -> AliasDeleted:
    """Remove the alias (audited); production and champion can only be moved (409)."""
    return await asyncio.to_thread(
        lifecycle.delete_alias, name=name, alias=alias, reason=reason, actor=actor
    )


@router.post("/{name}/rollback", response_model=AliasMoved, responses=errors(404, 409, 422))
async def rollback(
    name: str, body: Annotated[Rollback, Body()], lifecycle: LifecycleDep, request: Request
) -> AliasMoved:
    """Production back to an earlier ready version (the previous one when not named)."""
    return await asyncio.to_thread(
        lifecycle.rollback,
        name=name,
        version=body.version,
        reason=body.reason,
        actor=actor_of(request, body.actor),
    )


@router.get("/{name}/audit", response_model=list[AuditEntry], responses=errors(404, 422))
async def get_audit(
    name: str, catalog: CatalogDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[AuditEntry]:
    """The model's audit log, newest first."""
    return await asyncio.to_thread(catalog.audit, name=name, limit=limit)
