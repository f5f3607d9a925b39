"""Models brought by their users: the ONNX file (and sample predictions) streamed in as a
multipart body, stored under the registry's own key; the trainer then evaluates it."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from millrace_common.http import errors
from millrace_common.identity import actor_of

from millrace_registry.deps import UploadsDep
from millrace_registry.uploads import Upload, UploadId

router = APIRouter(prefix="/models", tags=["uploads"])


@router.post("/{name}/uploads", status_code=201, response_model=Upload, responses=errors(422))
async def upload_model(
    name: str,
    uploads: UploadsDep,
    request: Request,
    model: Annotated[UploadFile, File(description="the ONNX file")],
    samples: Annotated[
        UploadFile | None,
        File(description="JSON {rows, predictions, probabilities?}: the parity check"),
    ] = None,
    description: Annotated[str, Form(max_length=5000)] = "",
    actor: Annotated[str, Form(min_length=1, max_length=200)] = "api",
) -> Upload:
    """Store an ONNX model under a key the registry owns, with the sha256 and size it
    computes and the inputs and outputs it reads by opening it (422 when it does not
    open). Not a version yet: ask the features service for its evaluation
    (``POST /v1/models/{name}/train-requests`` with ``upload_id``), which registers it
    ready or rejected; ``millrace models upload`` does both."""
    sample_bytes = await samples.read() if samples is not None else None
    return await asyncio.to_thread(
        uploads.take,
        name=name,
        model=model.file,
        filename=model.filename or "model.onnx",
        samples=sample_bytes,
        description=description,
        actor=actor_of(request, actor),
    )


@router.get("/{name}/uploads/{upload_id}", response_model=Upload, responses=errors(404, 422))
async def get_upload(name: str, upload_id: UploadId, uploads: UploadsDep) -> Upload:
    return await asyncio.to_thread(uploads.get, name=name, upload_id=upload_id)
