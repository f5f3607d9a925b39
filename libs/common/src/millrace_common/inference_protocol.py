"""The Open Inference Protocol (KServe V2) over REST: a thin transport over the data plane,
so KServe, Seldon and Triton clients talk to Millrace unchanged.

Inputs come either as one tensor named like the model's ONNX input, shaped ``[N, F]``,
or as one tensor per feature (named after it), shaped ``[N]`` or ``[N, 1]``. Numeric
datatypes are accepted (converted to FP32), with ``data`` flat or nested, or as raw
bytes through the binary tensor extension (``Inference-Header-Content-Length``), which
is what Triton's client sends by default. Classifiers answer ``label`` (INT64) and
``probabilities`` (FP32); regressors their output as FP32. Errors are ``{"error": "…"}``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from millrace_common.dataplane import Choice, DataPlane, Route
from millrace_common.errors import InvalidInput, MillraceError, NotFound
from millrace_common.http import DirectRoute, ReadyCheck, status_of
from millrace_common.predict_api import ROUTING_KEY_HEADER
from millrace_common.scoring import LoadedModel

HEADER_LENGTH = "inference-header-content-length"
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
_V2_TYPES = {
    "float32": "FP32",
    "float64": "FP64",
    "int64": "INT64",
    "int32": "INT32",
    "string": "BYTES",
    "bool": "BOOL",
}


def v2_router(
    plane: DataPlane, *, ready: ReadyCheck, server: str = "millrace", server_version: str = "0.1.0"
) -> APIRouter:
    router = APIRouter()

    async def infer(request: Request, name: str) -> Response:
        return await infer_version(request, name, None)

    async def infer_version(request: Request, name: str, version: str | None) -> Response:
        started = time.perf_counter()
        try:
            body, chunks = _parse(await request.body(), request.headers.get(HEADER_LENGTH))
            key = request.headers.get(ROUTING_KEY_HEADER) or _parameter(body, "routing_key")
            choice = plane.choose(_route(name, version, key=key))
            matrix = _decoded(plane, choice, body, chunks)
            outputs = await plane.infer(choice, matrix, started=started)
            return encode_response(choice, body, outputs)
        except MillraceError as exc:
            return error(exc)

    # registered first: routes are matched in order, and this is the one under load
    for path, endpoint in (
        ("/v2/models/{name}/infer", infer),
        ("/v2/models/{name}/versions/{version}/infer", infer_version),
    ):
        router.add_api_route(path, endpoint, methods=["POST"], route_class_override=DirectRoute)

    @router.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {
            "name": server,
            "version": server_version,
            "extensions": ["binary_tensor_data", "model_repository"],
        }

    @router.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @router.get("/v2/health/ready")
    async def server_ready() -> JSONResponse:
        ok, _detail = await ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @router.get("/v2/models/{name}")
    @router.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> Response:
        return _guarded(lambda: _json(metadata(plane, plane.choose(_route(name, version)))))

    @router.get("/v2/models/{name}/ready")
    @router.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Response:
        def answer() -> Response:
            choice = plane.choose(_route(name, version))
            return _json({"name": name, "version": str(choice.model.version), "ready": True})

        return _guarded(answer)

    return router


def _route(name: str, version: str | None, *, key: str | None = None) -> Route:
    if version is None:
        return Route(name=name, key=key)
    try:
        return Route(name=name, version=int(version), key=key)
    except ValueError:
        raise NotFound(f"model '{name}' has no version '{version}'", field="version") from None


def _guarded(answer: Any) -> Response:
    try:
        return answer()
    except MillraceError as exc:
        return error(exc)


def error(exc: MillraceError) -> JSONResponse:
    message = f"{exc.field}: {exc.message}" if exc.field else exc.message
    return JSONResponse({"error": message}, status_code=status_of(exc))


def _json(body: dict[str, Any], *, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


def _parameter(body: dict[str, Any], name: str) -> str | None:
    parameters = body.get("parameters")
    value = parameters.get(name) if isinstance(parameters, dict) else None
    return None if value is None else str(value)


def metadata(plane: DataPlane, choice: Choice) -> dict[str, Any]:
    model = choice.model
    versions = sorted({m.version for m in plane.slots.aliases_of(model.name).values()})
    return {
        "name": model.name,
        "versions": [str(v) for v in versions],
        "platform": "onnxruntime_onnx",
        "inputs": [
            {
                "name": model.schema.inputs[0].name,
                "datatype": "FP32",
                "shape": [-1, len(model.schema.features)],
            }
        ],
        "outputs": [
            {
                "name": o.name,
                "datatype": _V2_TYPES.get(o.dtype, "FP32"),
                "shape": [-1 if d is None else d for d in o.shape] or [-1],
            }
            for o in model.schema.outputs
        ],
        "parameters": {
            "alias": choice.alias,
            "version": str(model.version),
            "features": model.schema.features,
        },
    }


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


def _decoded(plane: DataPlane, choice: Choice, body: dict[str, Any], chunks: bytes) -> np.ndarray:
    try:
        tensors = decode_tensors(body["inputs"], chunks)
        matrix = feature_matrix(choice.model, tensors)
        plane.check_rows(len(matrix), field="inputs")
        return matrix
    except MillraceError as exc:
        plane.failed(choice, exc)
        raise


def decode_tensors(inputs: list[Any], chunks: bytes) -> dict[str, tuple[int, np.ndarray]]:
    """Each input as ``{name: (position, array shaped as declared)}``."""
    tensors: dict[str, tuple[int, np.ndarray]] = {}
    offset = 0
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise InvalidInput("each input needs a name, shape, datatype and data", field=where)
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
        tensors[tensor["name"]] = (i, array.reshape(shape))
    return tensors


def _shape(shape: Any, where: str) -> list[int]:
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidInput("shape must be a list of non-negative integers", field=f"{where}.shape")
    return shape


def _values(
    tensor: dict[str, Any], dtype: Any, chunks: bytes, where: str
) -> tuple[np.ndarray, int]:
    parameters = tensor.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is not None:
        if not isinstance(size, int) or size > len(chunks):
            raise InvalidInput(
                "binary_data_size is larger than the bytes sent",
                field=f"{where}.parameters.binary_data_size",
            )
        try:
            return np.frombuffer(chunks[:size], dtype=dtype), size
        except ValueError as exc:
            raise InvalidInput(str(exc), field=f"{where}.parameters") from None
    data = tensor.get("data")
    if data is None:
        raise InvalidInput("required: data (or binary_data_size)", field=f"{where}.data")
    try:
        return np.asarray(data, dtype=dtype).reshape(-1), 0
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"data is not {tensor['datatype']}: {exc}", field=f"{where}.data"
        ) from None


def feature_matrix(model: LoadedModel, tensors: dict[str, tuple[int, np.ndarray]]) -> np.ndarray:
    features = model.schema.features
    whole = model.schema.inputs[0].name
    if whole in tensors:
        position, array = tensors[whole]
        if array.ndim != 2 or array.shape[1] != len(features):
            raise InvalidInput(
                f"input '{whole}' must be shaped [N, {len(features)}] "
                f"(features {', '.join(features)}), got {list(array.shape)}",
                field=f"inputs[{position}].shape",
            )
        return np.ascontiguousarray(array, dtype=np.float32)
    return _columns(features, tensors)


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
        columns.append(array.reshape(-1))
    if len({len(c) for c in columns}) != 1:
        raise InvalidInput("every feature input must have the same number of rows", field="inputs")
    return np.ascontiguousarray(np.stack(columns, axis=1), dtype=np.float32)


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
    headers = {"x-millrace-model-version": str(model.version)}
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
