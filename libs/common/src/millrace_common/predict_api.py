"""The predict routes shared by serving and the edge agent: one thin transport over the
scoring core, so nothing about scoring is written twice.

``POST /v1/models/{name}/predict`` takes ``{"instances": [{feature: number}]}`` or, where
an online-feature lookup is wired in, ``{"entity_ids": ["m-17"]}``; ``GET /v1/models``
lists what this process has loaded.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from millrace_common.contracts import ModelSchema
from millrace_common.dataplane import (
    INLINE_ROWS,
    LATENCY,
    REQUESTS,
    Choice,
    DataPlane,
    PredictionSink,
    Route,
    describe_loaded,
)
from millrace_common.errors import InvalidInput, MillraceError
from millrace_common.http import DirectRoute
from millrace_common.scoring import LoadedModel, ModelSlots, format_outputs, matrix_from_instances

__all__ = [
    "INLINE_ROWS",
    "LATENCY",
    "REQUESTS",
    "OnlineLookup",
    "PredictionSink",
    "PredictRequest",
    "describe",
    "predict_router",
]

OnlineLookup = Callable[[ModelSchema, Sequence[str]], Awaitable[list[dict[str, Any]]]]
"""Features per entity id, in order; raises NotFound naming a missing entity."""

NO_LOOKUP = "this server has no online feature store: send 'instances' with the features"
ROUTING_KEY_HEADER = "x-millrace-routing-key"


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: list[dict[str, Any]] | None = None
    entity_ids: list[str] | None = Field(default=None, min_length=1)
    alias: str | None = None
    """Default ``production``; ignored when ``version`` pins one."""
    version: int | None = None
    key: str | None = None
    """A routing key for sticky traffic policies (or the X-Millrace-Routing-Key header)."""


def predict_router(
    slots: ModelSlots,
    *,
    lookup: OnlineLookup | None = None,
    sink: PredictionSink | None = None,
    no_lookup_message: str = NO_LOOKUP,
    plane: DataPlane | None = None,
) -> APIRouter:
    """``plane`` carries traffic policies, batching and limits; without one, requests
    go straight to ``slots``."""
    plane = plane or DataPlane(slots=slots, sink=sink)
    router = APIRouter()

    async def predict(request: Request, name: str) -> Response:
        started = time.perf_counter()
        body = parse_body(await request.body())
        choice = plane.choose(
            Route(
                name=name,
                alias=body.alias,
                version=body.version,
                key=body.key or request.headers.get(ROUTING_KEY_HEADER),
                entity=body.entity_ids[0] if body.entity_ids else None,
            )
        )
        model = choice.model
        try:
            instances = await _instances(body, model, lookup, no_lookup_message)
            plane.check_rows(len(instances), field="instances")
            matrix = matrix_from_instances(model.schema, instances)
        except MillraceError as exc:
            plane.failed(choice, exc)
            raise
        choice, outputs = await plane.answer(choice, matrix, started=started)
        return _answer(name, choice, format_outputs(choice.model.schema.task, outputs))

    router.add_api_route(
        "/v1/models/{name}/predict",
        predict,
        methods=["POST"],
        route_class_override=DirectRoute,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
            }
        },
    )

    @router.get("/v1/models")
    async def loaded_models() -> list[dict[str, Any]]:
        return [describe(model, alias) for (_name, alias), model in slots.items()]

    return router


def parse_body(raw: bytes) -> PredictRequest:
    """Decode and validate the body here rather than through FastAPI's dependency
    machinery: on the hot path that machinery costs more than scoring the model.
    Errors keep FastAPI's shape (422, every field named)."""
    try:
        return PredictRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in errors]
        ) from None


def _answer(name: str, choice: Choice, predictions: list[dict[str, Any]]) -> Response:
    version = choice.model.version
    return Response(
        orjson.dumps(
            {"model": name, "version": version, "alias": choice.alias, "predictions": predictions}
        ),
        media_type="application/json",
        headers={"x-millrace-model-version": str(version)},
    )


def describe(model: LoadedModel, alias: str) -> dict[str, Any]:
    return describe_loaded(model, alias)


async def _instances(
    body: PredictRequest, model: LoadedModel, lookup: OnlineLookup | None, no_lookup_message: str
) -> list[dict[str, Any]]:
    if body.instances is not None and body.entity_ids is not None:
        raise InvalidInput("send either 'instances' or 'entity_ids', not both", field="entity_ids")
    if body.entity_ids is None:
        if body.instances is None:
            raise InvalidInput("required: 'instances' (or 'entity_ids')", field="instances")
        return body.instances
    if lookup is None:
        raise InvalidInput(no_lookup_message, field="entity_ids")
    return await lookup(model.schema, body.entity_ids)
