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
from fastapi import APIRouter, Depends, Request
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
    next_request_id,
)
from millrace_common.errors import InvalidInput, MillraceError
from millrace_common.http import DirectRoute, errors
from millrace_common.scoring import (
    LoadedModel,
    ModelSlots,
    format_outputs,
    matrix_from_instances,
    refuse_unanswered_missing,
)

__all__ = [
    "INLINE_ROWS",
    "LATENCY",
    "REQUESTS",
    "LoadedModelOut",
    "OnlineLookup",
    "PredictionSink",
    "PredictRequest",
    "PredictResponse",
    "describe",
    "predict_router",
]

OnlineLookup = Callable[[ModelSchema, Sequence[str]], Awaitable[list[dict[str, Any]]]]
"""Features per entity id, in order; raises NotFound naming a missing entity."""

NO_LOOKUP = "this server has no online feature store: send 'instances' with the features"
ROUTING_KEY_HEADER = "x-millrace-routing-key"
VERSION_HEADER = "x-millrace-model-version"
REQUEST_ID_HEADER = "x-millrace-request-id"


class PredictRequest(BaseModel):
    """Explicit features (``instances``) or entities whose online features are looked up
    (``entity_ids``): one of the two."""

    model_config = ConfigDict(extra="forbid")
    instances: list[dict[str, Any]] | None = Field(
        default=None, description="one object of feature values per row"
    )
    entity_ids: list[str] | None = Field(
        default=None, min_length=1, description="entities whose online features to score"
    )
    alias: str | None = Field(
        default=None, description="default ``production``; ignored when ``version`` pins one"
    )
    version: int | None = Field(default=None, description="a pinned version to answer")
    key: str | None = Field(
        default=None,
        description="a routing key for sticky traffic policies (or the "
        "X-Millrace-Routing-Key header)",
    )
    request_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="the caller's own id for this request (else one is drawn): labels that "
        "arrive later name it (``POST /v1/datasets/{name}/labels``)",
    )


class Prediction(BaseModel):
    """One row's answer: a classifier's ``label`` (and ``probabilities`` per class when
    the model gives them), a regressor's ``value``."""

    label: int | str | None = None
    probabilities: list[float] | None = None
    value: float | None = None


class PredictResponse(BaseModel):
    model: str
    version: int
    alias: str | None = Field(description="the alias that answered; null for a pinned version")
    request_id: str = Field(description="what a label for these predictions names")
    predictions: list[Prediction]


class LoadedModelOut(BaseModel):
    name: str
    alias: str | None
    version: int
    sha256: str
    task: str
    features: list[str]
    loaded_at: str = Field(description="ISO 8601, UTC")


def predict_router(
    slots: ModelSlots,
    *,
    lookup: OnlineLookup | None = None,
    sink: PredictionSink | None = None,
    no_lookup_message: str = NO_LOOKUP,
    plane: DataPlane | None = None,
    access_errors: Sequence[int] = (),
) -> APIRouter:
    """``plane`` carries traffic policies, batching and limits; without one, requests
    go straight to ``slots``. ``access_errors`` are the statuses a layer in front of the
    app answers on these routes (serving's API keys and body limit), for the docs."""
    plane = plane or DataPlane(slots=slots, sink=sink)
    router = APIRouter(tags=["predict"], responses=errors(*access_errors))

    async def predict(request: Request, name: str) -> Response:
        """Score rows on the model's production (or the alias or version the body
        names, or the one a traffic policy picks)."""
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
            plane.failed(choice, exc, started=started)
            raise
        request_id = body.request_id or next_request_id()
        choice, outputs = await plane.answer(
            choice, matrix, started=started, request_id=request_id, entity_ids=body.entity_ids
        )
        refuse_unanswered_missing(choice.model.schema.features, matrix, outputs)
        answered = format_outputs(choice.model.schema.task, outputs)
        return _answer(name, choice, answered, request_id)

    router.add_api_route(
        "/v1/models/{name}/predict",
        predict,
        methods=["POST"],
        route_class_override=DirectRoute,
        dependencies=[Depends(_documents_predict_request)],
        response_model=PredictResponse,
        responses={
            200: {
                "headers": {
                    VERSION_HEADER: _header("the version that answered", "integer"),
                    REQUEST_ID_HEADER: _header("the request id labels name", "string"),
                }
            },
            **errors(404, 422, 504),
        },
        openapi_extra={"parameters": [routing_key_parameter()]},
    )

    @router.get("/v1/models", response_model=list[LoadedModelOut])
    async def loaded_models() -> list[dict[str, Any]]:
        """The models this process has loaded, one entry per alias or pinned version."""
        return [describe(model, alias) for (_name, alias), model in slots.items()]

    return router


def _documents_predict_request(body: PredictRequest) -> None:
    """Never called: a DirectRoute solves no dependencies, so the hot path does not
    validate through this one (the endpoint parses its body itself). It is declared on
    the route so that OpenAPI documents the body, its schema a component like any other."""


def routing_key_parameter() -> dict[str, Any]:
    return {
        "name": "X-Millrace-Routing-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "a routing key for sticky traffic policies",
    }


def _header(description: str, kind: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}}


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


def _answer(
    name: str, choice: Choice, predictions: list[dict[str, Any]], request_id: str
) -> Response:
    version = choice.model.version
    answer = {
        "model": name,
        "version": version,
        "alias": choice.alias,
        "request_id": request_id,
        "predictions": predictions,
    }
    return Response(
        orjson.dumps(answer),
        media_type="application/json",
        headers={VERSION_HEADER: str(version), REQUEST_ID_HEADER: request_id},
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
