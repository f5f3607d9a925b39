"""Routes of training runs: reported by the trainer, listed, read and compared."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response
from millrace_common.errors import InvalidInput
from millrace_common.http import errors

from millrace_registry.api.params import BYTES, PAGED, Limit, Offset, paged
from millrace_registry.deps import RunArtifactsDep, RunsDep
from millrace_registry.names import RunStatus
from millrace_registry.run_artifacts import RunArtifact
from millrace_registry.schemas import RunComparison, RunReport, TrainingRun

router = APIRouter(prefix="/models/{name}/runs", tags=["runs"])


@router.get("", response_model=list[TrainingRun], responses=PAGED | errors(404, 422))
async def list_runs(
    name: str,
    runs: RunsDep,
    response: Response,
    status: Annotated[RunStatus | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[TrainingRun]:
    """The model's runs, newest first; ``X-Total-Count`` for paging."""
    found, total = await asyncio.to_thread(
        runs.runs, name=name, status=status, limit=limit, offset=offset
    )
    paged(response, total)
    return found


@router.get("/compare", response_model=RunComparison, responses=errors(404, 422))
async def compare_runs(
    name: str, runs: RunsDep, run: Annotated[list[str], Query(min_length=2)]
) -> RunComparison:
    """Two or more runs side by side (``?run=a&run=b``)."""
    return await asyncio.to_thread(runs.compare, name=name, run_ids=run)


@router.get("/{run_id}", response_model=TrainingRun, responses=errors(404, 422))
async def get_run(name: str, run_id: str, runs: RunsDep) -> TrainingRun:
    return await asyncio.to_thread(runs.run, name=name, run_id=run_id)


@router.put("/{run_id}", response_model=TrainingRun, responses=errors(409, 422))
async def record_run(
    name: str, run_id: str, report: Annotated[RunReport, Body()], runs: RunsDep
) -> TrainingRun:
    """A run starting, or ending without a version (a finished run's status is final: 409)."""
    return await asyncio.to_thread(runs.record, name=name, run_id=run_id, report=report)


@router.put(
    "/{run_id}/artifacts/{path:path}", response_model=RunArtifact, responses=errors(404, 422)
)
async def put_artifact(
    name: str, run_id: str, path: str, request: Request, artifacts: RunArtifactsDep
) -> RunArtifact:
    """Keep a file with a recorded run (the body is the file's bytes)."""
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > artifacts.max_bytes:
            raise InvalidInput(
                f"the artifact is larger than the registry takes ({artifacts.max_bytes} bytes)",
                field="body",
            )
        parts.append(chunk)
    return await asyncio.to_thread(
        artifacts.put, name=name, run_id=run_id, path=path, data=b"".join(parts)
    )


@router.get("/{run_id}/artifacts", response_model=list[RunArtifact], responses=errors(404))
async def list_artifacts(name: str, run_id: str, artifacts: RunArtifactsDep) -> list[RunArtifact]:
    return await asyncio.to_thread(artifacts.list, name=name, run_id=run_id)


@router.get(
    "/{run_id}/artifacts/{path:path}",
    response_class=Response,
    responses=BYTES | errors(404, 422),
)
async def get_artifact(name: str, run_id: str, path: str, artifacts: RunArtifactsDep) -> Response:
    data = await asyncio.to_thread(artifacts.get, name=name, run_id=run_id, path=path)
    return Response(data, media_type="application/octet-stream")
