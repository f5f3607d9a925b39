"""The Open Inference Protocol (KServe V2) over REST: a thin transport over the data plane,
so KServe, Seldon and Triton clients talk to Millrace unchanged.

Inputs come either as one tensor named like the model's ONNX input, shaped ``[N, F]``,
or as one tensor per feature (named after it), shaped ``[N]`` or ``[N, 1]``. Numeric
datatypes are accepted (converted to FP32), with ``data`` flat or nested, or as raw
bytes through the binary tensor extension (``Inference-Header-Content-Length``), which
is what Triton's client sends by default. Classifiers answer ``label`` (INT64) and
``probabilities`` (FP32); regressors their output as FP32. Errors are ``{"error": "…"}``.
Triton's repository index, model configuration and statistics are served too (built in
``inference_extensions``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from millrace_common.dataplane import Choice, DataPlane, Route
from millrace_common.errors import InvalidInput, MillraceError, NotFound
from millrace_common.http import DirectRoute, ReadyCheck, v2_errors
from millrace_common.inference_extensions import (
    ModelConfig,
    RepositoryIndexRequest,
    RepositoryModel,
    StatisticsResponse,
    model_config,
    repository_index,
    statistics,
)
from millrace_common.predict_api import ROUTING_KEY_HEADER, VERSION_HEADER, routing_key_parameter
from millrace_common.scoring import LoadedModel

HEADER_LENGTH = "inference-header-content-length"
EXTENSIONS = ("binary_tensor_data", "model_configuration", "statistics")
"""What ``GET /v2`` advertises: the binary tensors, and Triton's model configuration and
statistics extensions; the repository index is served, but not the rest of the
``model_repository`` extension (load, unload), so it is not claimed."""
NUMERIC = {
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}
_INTEGERS: tuple[type[np.integer[Any]], ...] = (
    np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
)  # fmt: skip
_RANGE: dict[Any, tuple[int, int]] = {
    t: (int(np.iinfo(t).min), int(np.iinfo(t).max)) for t in _INTEGERS
}
"""Each integer datatype's bounds, as Python ints (compared exactly with any JSON number)."""
_LARGEST: dict[Any, float] = {
    t: float(np.finfo(t).max) for t in (np.float16, np.float32, np.float64)
}
"""Each float datatype's largest finite magnitude: beyond it, a value would become inf."""
_V2_TYPES = {
    "float32": "FP32",
    "float64": "FP64",
    "int64": "INT64",
    "int32": "INT32",
    "string": "BYTES",
    "bool": "BOOL",
}


# -- the protocol's documents ------------------------------------------------------------
# What /openapi.json shows. Inference requests are not validated through these models:
# they are decoded by hand below, because on the hot path pydantic costs more than
# scoring a small model.


class RequestInput(BaseModel):
    name: str = Field(description="the model's ONNX input, or one feature")
    shape: list[int] = Field(description="[N, F] for the whole input, [N] or [N, 1] a feature")
    datatype: str = Field(description=f"one of {', '.join(NUMERIC)}")
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_size: the tensor's bytes follow the JSON header"
    )
    data: list[Any] | None = Field(None, description="row-major values, flat or nested")


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data: answer this output as raw bytes"
    )


class InferenceRequest(BaseModel):
    id: str | None = Field(None, description="echoed in the response")
    parameters: dict[str, Any] | None = Field(
        None, description="routing_key (sticky traffic policies), binary_data_output"
    )
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = Field(None, description="default: every output")


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_size, when the output follows the JSON header as bytes"
    )
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] = Field(description="alias: the alias that answered")
    outputs: list[ResponseOutput]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: dict[str, Any] = Field(description="alias, version and features")


class ModelReady(BaseModel):
    name: str
    version: str
    ready: bool


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_BINARY_BODY = {
    # the binary tensor extension: the JSON header, then the tensors' raw bytes
    "content": {"application/octet-stream": _BINARY},
}


def _documents_inference_request(body: InferenceRequest) -> None:
    """Never called: a DirectRoute solves no dependencies, so the hot path does not
    validate through this one (the endpoint decodes its body itself). It is declared on
    the infer routes so that OpenAPI documents the body, its schema a component."""


_HEADER_LENGTH_PARAMETER = {
    "name": "Inference-Header-Content-Length",
    "in": "header",
    "required": False,
    "schema": {"type": "integer"},
    "description": "binary tensor extension: the length of the JSON header",
}


def v2_router(
    plane: DataPlane,
    *,
    ready: ReadyCheck,
    server: str = "millrace",
    server_version: str = "0.1.0",
    access_errors: Sequence[int] = (),
) -> APIRouter:
    """``access_errors`` are the statuses a layer in front of the app answers on the
    model routes (serving's API keys and body limit), for the docs."""
    router = APIRouter(tags=["open inference protocol"])
    guarded = v2_errors(*access_errors)

    async def infer(request: Request, name: str) -> Response:
        """Score the tensors on the model's production (or the one a traffic policy
        picks)."""
        return await _infer(request, name, None)

    async def infer_version(request: Request, name: str, version: str) -> Response:
        """Score the tensors on a pinned version."""
        return await _infer(request, name, version)

    async def _infer(request: Request, name: str, version: str | None) -> Response:
        started = time.perf_counter()
        body, chunks = _parse(await request.body(), request.headers.get(HEADER_LENGTH))
        key = request.headers.get(ROUTING_KEY_HEADER) or _parameter(body, "routing_key")
        choice = plane.choose(_route(name, version, key=key))
        matrix = _decoded(plane, choice, body, chunks, started=started)
        request_id = body.get("id")
        outputs = await plane.infer(
            choice,
            matrix,
            started=started,
            request_id=request_id if isinstance(request_id, str) and request_id else None,
        )
        return encode_response(choice, body, outputs)

    # registered first: routes are matched in order, and this is the one under load
    for path, endpoint in (
        ("/v2/models/{name}/infer", infer),
        ("/v2/models/{name}/versions/{version}/infer", infer_version),
    ):
        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            route_class_override=DirectRoute,
            dependencies=[Depends(_documents_inference_request)],
            response_model=InferenceResponse,
            responses={
                200: {
                    "content": {"application/octet-stream": _BINARY},
                    "headers": {
                        HEADER_LENGTH: {
                            "description": "with binary outputs: the JSON header's length",
                            "schema": {"type": "integer"},
                        },
                        VERSION_HEADER: {
                            "description": "the version that answered",
                            "schema": {"type": "integer"},
                        },
                    },
                },
                **v2_errors(404, 422, 504),
                **guarded,
            },
            openapi_extra={
                "requestBody": _BINARY_BODY,
                "parameters": [_HEADER_LENGTH_PARAMETER, routing_key_parameter()],
            },
        )

    _add_extensions(router, plane, guarded)

    @router.get("/v2", response_model=ServerMetadata)
    async def server_metadata() -> ServerMetadata:
        return ServerMetadata(name=server, version=server_version, extensions=list(EXTENSIONS))

    @router.get("/v2/health/live", response_model=ServerLive)
    async def live() -> ServerLive:
        return ServerLive(live=True)

    @router.get(
        "/v2/health/ready", response_model=ServerReady, responses={503: {"model": ServerReady}}
    )
    async def server_ready() -> JSONResponse:
        ok, _detail = await ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @router.get(
        "/v2/models/{name}", response_model=ModelMetadata, responses=v2_errors(404) | guarded
    )
    async def model_metadata(name: str) -> ModelMetadata:
        return metadata(plane, plane.choose(_route(name, None)))

    @router.get(
        "/v2/models/{name}/versions/{version}",
        response_model=ModelMetadata,
        responses=v2_errors(404) | guarded,
    )
    async def version_metadata(name: str, version: str) -> ModelMetadata:
        return metadata(plane, plane.choose(_route(name, version)))

    @router.get(
        "/v2/models/{name}/ready", response_model=ModelReady, responses=v2_errors(404) | guarded
    )
    async def model_ready(name: str) -> ModelReady:
        return readiness(name, plane.choose(_route(name, None)))

    @router.get(
        "/v2/models/{name}/versions/{version}/ready",
        response_model=ModelReady,
        responses=v2_errors(404) | guarded,
    )
    async def version_ready(name: str, version: str) -> ModelReady:
        return readiness(name, plane.choose(_route(name, version)))

    return router


def _add_extensions(
    router: APIRouter, plane: DataPlane, guarded: dict[int | str, dict[str, Any]]
) -> None:
    """Triton's repository index, model configuration and statistics
    (``inference_extensions``); before the model metadata routes, which would take
    ``/v2/models/stats`` for a model named ``stats``."""

    @router.post(
        "/v2/repository/index",
        response_model=list[RepositoryModel],
        responses=v2_errors(422) | guarded,
    )
    async def repository(body: RepositoryIndexRequest | None = None) -> list[RepositoryModel]:
        """The models this process has loaded, each version READY. Which versions it
        loads follows the registry (and serving's /v1/admin routes): the repository
        extension's load and unload are not offered."""
        return repository_index(plane.slots)

    @router.get("/v2/models/stats", response_model=StatisticsResponse, responses=guarded)
    async def every_statistics() -> StatisticsResponse:
        """What every loaded version did since it was loaded."""
        return statistics(plane.slots)

    @router.get(
        "/v2/models/{name}/stats",
        response_model=StatisticsResponse,
        responses=v2_errors(404) | guarded,
    )
    async def model_statistics(name: str) -> StatisticsResponse:
        return statistics(plane.slots, name=name)

    @router.get(
        "/v2/models/{name}/versions/{version}/stats",
        response_model=StatisticsResponse,
        responses=v2_errors(404) | guarded,
    )
    async def version_statistics(name: str, version: str) -> StatisticsResponse:
        return statistics(plane.slots, name=name, version=_route(name, version).version)

    @router.get(
        "/v2/models/{name}/config", response_model=ModelConfig, responses=v2_errors(404) | guarded
    )
    async def config(name: str) -> ModelConfig:
        """The configuration of the version that answers by default."""
        return configuration(plane, plane.choose(_route(name, None)))

    @router.get(
        "/v2/models/{name}/versions/{version}/config",
        response_model=ModelConfig,
        responses=v2_errors(404) | guarded,
    )
    async def version_config(name: str, version: str) -> ModelConfig:
        return configuration(plane, plane.choose(_route(name, version)))


def _route(name: str, version: str | None, *, key: str | None = None) -> Route:
    if version is None:
        return Route(name=name, key=key)
    try:
        return Route(name=name, version=int(version), key=key)
    except ValueError:
        raise NotFound(f"model '{name}' has no version '{version}'", field="version") from None


def _json(body: dict[str, Any], *, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


def _parameter(body: dict[str, Any], name: str) -> str | None:
    parameters = body.get("parameters")
    value = parameters.get(name) if isinstance(parameters, dict) else None
    return None if value is None else str(value)


def readiness(name: str, choice: Choice) -> ModelReady:
    return ModelReady(name=name, version=str(choice.model.version), ready=True)


def _loaded_versions(plane: DataPlane, name: str) -> list[int]:
    return sorted({m.version for m in plane.slots.aliases_of(name).values()})


def configuration(plane: DataPlane, choice: Choice) -> ModelConfig:
    model = choice.model
    return model_config(model, alias=choice.alias, versions=_loaded_versions(plane, model.name))


def metadata(plane: DataPlane, choice: Choice) -> ModelMetadata:
    model = choice.model
    versions = _loaded_versions(plane, model.name)
    return ModelMetadata(
        name=model.name,
        versions=[str(v) for v in versions],
        platform="onnxruntime_onnx",
        inputs=[
            MetadataTensor(
                name=model.schema.inputs[0].name,
                datatype="FP32",
                shape=[-1, len(model.schema.features)],
            )
        ],
        outputs=[
            MetadataTensor(
                name=o.name,
                datatype=_V2_TYPES.get(o.dtype, "FP32"),
                shape=[-1 if d is None else d for d in o.shape] or [-1],
            )
            for o in model.schema.outputs
        ],
        parameters={
            "alias": choice.alias,
            "version": str(model.version),
            "features": model.schema.features,
        },
    )


# -- request decoding --------------------------------------------------------------------


def _parse(raw: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """The JSON header and, with the binary extension, the raw tensor bytes after it."""
    try:
        size = len(raw) if header_length is None else int(header_length)
        body = orjson.loads(raw[:size])
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidInput(
            f"the body is not a JSON inference request: {exc}", field="body"
        ) from None
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise InvalidInput("required: a non-empty list of input tensors", field="inputs")
    return body, raw[size:]


def _decoded(
    plane: DataPlane, choice: Choice, body: dict[str, Any], chunks: bytes, *, started: float
) -> np.ndarray:
    try:
        tensors = decode_tensors(body["inputs"], chunks)
        matrix = feature_matrix(choice.model, tensors)
        plane.check_rows(len(matrix), field="inputs")
        return matrix
    except MillraceError as exc:
        plane.failed(choice, exc, started=started)
        raise


def decode_tensors(inputs: list[Any], chunks: bytes) -> dict[str, tuple[int, np.ndarray]]:
    """Each input as ``{name: (position, array shaped as declared)}``; every value a number
    its datatype holds (no nulls, no non-finite or out-of-range values), every name once."""
    tensors: dict[str, tuple[int, np.ndarray]] = {}
    offset = 0
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise InvalidInput("each input needs a name, shape, datatype and data", field=where)
        name = tensor["name"]
        if name in tensors:
            raise InvalidInput(
                f"input '{name}' is sent twice (also as inputs[{tensors[name][0]}])",
                field=f"{where}.name",
            )
        shape = _shape(tensor.get("shape"), where)
        dtype = NUMERIC.get(str(tensor.get("datatype")))
        if dtype is None:
            raise InvalidInput(
                f"datatype {tensor.get('datatype')!r} is not numeric (one of {', '.join(NUMERIC)})",
                field=f"{where}.datatype",
            )
        array, used = _values(tensor, dtype, chunks[offset:], where)
        offset += used
        if array.size != math.prod(shape):
            raise InvalidInput(
                f"{array.size} values do not fill shape {shape}", field=f"{where}.shape"
            )
        tensors[name] = (i, array.reshape(shape))
    return tensors


def _shape(shape: Any, where: str) -> list[int]:
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInput("shape must be a list of non-negative integers", field=f"{where}.shape")
    return shape


def _values(
    tensor: dict[str, Any], dtype: Any, chunks: bytes, where: str
) -> tuple[np.ndarray, int]:
    parameters = tensor.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is not None:
        if type(size) is not int or not 0 <= size <= len(chunks):
            raise InvalidInput(
                f"binary_data_size must be a number of bytes, at most the {len(chunks)} sent",
                field=f"{where}.parameters.binary_data_size",
            )
        try:
            sent = np.frombuffer(chunks[:size], dtype=dtype)
        except ValueError as exc:
            raise InvalidInput(str(exc), field=f"{where}.parameters") from None
        return _held(sent, _items(sent), tensor, dtype, where), size
    data = tensor.get("data")
    if data is None:
        raise InvalidInput("required: data (or binary_data_size)", field=f"{where}.data")
    try:
        found = np.asarray(data)
    except (ValueError, TypeError) as exc:  # ragged nesting
        raise InvalidInput(
            f"input '{tensor['name']}': data is not {tensor['datatype']}: {exc}",
            field=f"{where}.data",
        ) from None
    return _held(found.reshape(-1), _flat(data), tensor, dtype, where), 0


def _held(
    values: np.ndarray, sent: Iterable[Any], tensor: dict[str, Any], dtype: Any, where: str
) -> np.ndarray:
    """``values`` as ``dtype``; InvalidInput naming the first of ``sent`` (the same values
    as the client wrote them) that the datatype cannot hold."""
    held = _as_datatype(values, dtype)
    if held is not None:
        return held
    held_each: list[Any] = []
    for index, value in enumerate(sent):
        problem = _problem(value, dtype, tensor["datatype"])
        if problem is not None:
            raise InvalidInput(
                f"input '{tensor['name']}': data[{index}] {problem}", field=f"{where}.data"
            )
        held_each.append(value)
    # each fits, but not numpy's guess at a common type (2**64 - 1 beside 0 is float64)
    return np.array(held_each, dtype=dtype)


def _as_datatype(values: np.ndarray, dtype: Any) -> np.ndarray | None:
    """``values`` as ``dtype`` when each is a number it holds: an integer within its range,
    a finite float within its range (1e39 is no FP32: it would become inf); else None.
    Vectorised, with no cast that could overflow: this is the hot path, and ``_problem``
    says what is wrong, value by value, once something is."""
    kind = values.dtype.kind
    if kind not in "iuf":  # null, string, bool, an integer beyond 64 bits
        return None
    if values.size == 0 or values.dtype == dtype and kind in "iu":
        return values.astype(dtype, copy=False)
    bounds = _RANGE.get(dtype)
    if bounds is not None:
        return values.astype(dtype, copy=False) if _integers_within(values, bounds) else None
    if kind == "f" and values.dtype.itemsize <= np.dtype(dtype).itemsize:
        held = bool(np.isfinite(values).all())  # as wide or wider: only NaN and inf fail
    else:
        held = _within(values, _LARGEST[dtype])
    return values.astype(dtype, copy=False) if held else None


def _within(values: np.ndarray, largest: float) -> bool:
    """Every value finite and at most ``largest`` in magnitude (NaN compares false)."""
    return bool(np.abs(values.astype(np.float64, copy=False)).max() <= largest)


def _integers_within(values: np.ndarray, bounds: tuple[int, int]) -> bool:
    low, high = bounds
    if values.dtype.kind in "iu":
        return low <= int(values.min()) and int(values.max()) <= high
    whole = bool(np.isfinite(values).all() and (values == np.trunc(values)).all())
    # float(high) + 1 is exact (2**63 for INT64), where float(high) rounds up to it
    return whole and low <= float(values.min()) and float(values.max()) < float(high) + 1


def _problem(value: Any, dtype: Any, datatype: str) -> str | None:
    """What keeps ``datatype`` from holding ``value`` (as the JSON had it), or None."""
    if value is None:
        return "is null"
    if type(value) is bool or not isinstance(value, int | float):
        return f"= {_shown(value)} is not a number"
    if isinstance(value, float) and not math.isfinite(value):
        return f"= {value} is not a finite number"
    bounds = _RANGE.get(dtype)
    if bounds is not None:
        if isinstance(value, float) and not value.is_integer():
            return f"= {value} is not an integer, as {datatype} values are"
        low, high = bounds
        if not low <= value < high + 1:
            return f"= {_shown(value)} is out of range for {datatype} ({low} to {high})"
        return None
    try:
        held = abs(float(value)) <= _LARGEST[dtype]
    except OverflowError:  # an integer beyond even float64
        held = False
    return None if held else f"= {_shown(value)} is out of range for {datatype}"


def _shown(value: Any) -> str:
    try:
        shown = repr(value)
    except ValueError:  # an integer of more digits than Python prints
        return "a very large integer"
    return shown if len(shown) <= 40 else f"{shown[:37]}..."


def _items(array: np.ndarray) -> Iterator[Any]:
    """The array's values as Python numbers, converted only when asked for."""
    yield from array.tolist()


def _flat(data: Any) -> Iterator[Any]:
    """The values of nested lists, row-major; iterative, as the nesting is the client's."""
    stack = [iter([data])]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            yield value
        else:
            stack.pop()


def feature_matrix(model: LoadedModel, tensors: dict[str, tuple[int, np.ndarray]]) -> np.ndarray:
    features = model.schema.features
    whole = model.schema.inputs[0].name
    if whole in tensors:
        position, array = tensors[whole]
        others = sorted(set(tensors) - {whole})
        if others:
            raise InvalidInput(
                f"unknown input '{others[0]}': input '{whole}' already carries every feature",
                field=f"inputs.{others[0]}",
            )
        if array.ndim != 2 or array.shape[1] != len(features):
            raise InvalidInput(
                f"input '{whole}' must be shaped [N, {len(features)}] "
                f"(features {', '.join(features)}), got {list(array.shape)}",
                field=f"inputs[{position}].shape",
            )
        return _model_input(whole, position, array)
    return _columns(features, tensors)


def _model_input(name: str, position: int, array: np.ndarray) -> np.ndarray:
    """``array`` as the FP32 the model takes. Only FP64 can hold what FP32 cannot: a value
    beyond it (1e300) is refused, not scored as inf."""
    if array.dtype == np.float64 and array.size and not _within(array, _LARGEST[np.float32]):
        index = int(np.flatnonzero(~(np.abs(array) <= _LARGEST[np.float32]))[0])
        raise InvalidInput(
            f"input '{name}': data[{index}] = {array.reshape(-1)[index]} is out of range for "
            "FP32, the datatype the model takes",
            field=f"inputs[{position}].data",
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _columns(features: list[str], tensors: dict[str, tuple[int, np.ndarray]]) -> np.ndarray:
    unknown = sorted(set(tensors) - set(features))
    if unknown:
        raise InvalidInput(
            f"unknown input '{unknown[0]}': the model takes {', '.join(features)}",
            field=f"inputs.{unknown[0]}",
        )
    columns = []
    for name in features:
        if name not in tensors:
            raise InvalidInput(f"missing feature '{name}'", field=f"inputs.{name}")
        position, array = tensors[name]
        if array.ndim not in (1, 2) or (array.ndim == 2 and array.shape[1] != 1):
            raise InvalidInput(
                f"feature '{name}' must be shaped [N] or [N, 1]", field=f"inputs[{position}].shape"
            )
        columns.append(_model_input(name, position, array.reshape(-1)))
    if len({len(c) for c in columns}) != 1:
        raise InvalidInput("every feature input must have the same number of rows", field="inputs")
    return np.stack(columns, axis=1)


# -- response encoding -------------------------------------------------------------------


def output_tensors(
    model: LoadedModel, outputs: list[np.ndarray]
) -> list[tuple[str, str, np.ndarray]]:
    names = [o.name for o in model.schema.outputs]
    if model.schema.task == "regression":
        return [(names[0], "FP32", outputs[0].astype(np.float32).reshape(-1))]
    labels = outputs[0].reshape(-1)
    tensors = [
        (names[0], "BYTES", labels)
        if labels.dtype.kind in "OUS"
        else (names[0], "INT64", labels.astype(np.int64))
    ]
    if len(outputs) > 1:
        tensors.append((names[1], "FP32", outputs[1].astype(np.float32)))
    return tensors


def encode_response(choice: Choice, body: dict[str, Any], outputs: list[np.ndarray]) -> Response:
    model = choice.model
    tensors = output_tensors(model, outputs)
    wanted = _requested(body, [name for name, _, _ in tensors])
    binary_default = (body.get("parameters") or {}).get("binary_data_output") is True
    described, chunks = [], []
    for name, datatype, array in tensors:
        if name not in wanted:
            continue
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if wanted[name].get("binary_data", binary_default) and datatype != "BYTES":
            data = np.ascontiguousarray(array).tobytes()
            entry["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            entry["data"] = array.reshape(-1).tolist()
        described.append(entry)
    answer: dict[str, Any] = {
        "model_name": model.name,
        "model_version": str(model.version),
        "outputs": described,
        "parameters": {"alias": choice.alias},
    }
    if "id" in body:
        answer["id"] = body["id"]
    headers = {VERSION_HEADER: str(model.version)}
    if not chunks:
        return _json(answer, headers=headers)
    header = orjson.dumps(answer)
    headers[HEADER_LENGTH] = str(len(header))
    return Response(
        header + b"".join(chunks), media_type="application/octet-stream", headers=headers
    )


def _requested(body: dict[str, Any], available: list[str]) -> dict[str, dict[str, Any]]:
    requested = body.get("outputs")
    if not requested:
        return {name: {} for name in available}
    wanted: dict[str, dict[str, Any]] = {}
    for i, output in enumerate(requested):
        name = output.get("name") if isinstance(output, dict) else None
        if name not in available:
            raise InvalidInput(
                f"unknown output {name!r}: the model gives {', '.join(available)}",
                field=f"outputs[{i}].name",
            )
        wanted[name] = output.get("parameters") or {}
    return wanted
