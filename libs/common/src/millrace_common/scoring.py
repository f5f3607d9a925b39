"""The ONNX scoring core shared by serving and the edge agent.

A model is loaded beside the running one (verify digest → open session → check its
schema → warm up) and then swapped in with a single reference assignment, so requests
in flight finish on the session they started with.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from millrace_common.contracts import ModelSchema, TensorSpec
from millrace_common.errors import IntegrityError, InvalidInput, NotFound
from millrace_common.objectstore import sha256_hex
from millrace_common.onnx_guard import ExternalData, refuse_external_data

_EXTERNAL_DATA_FOLDER = "session.model_external_initializers_file_folder_path"
"""Where onnxruntime looks for external data of a model loaded from bytes
(``kOrtSessionOptionsModelExternalInitializersFileFolderPath``)."""
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(string)": "string",
}


@dataclass
class Duration:
    """How many, and their cumulative nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns

    def absorb(self, other: Duration) -> None:
        self.count += other.count
        self.ns += other.ns


class InferenceStatistics:
    """What a loaded model has done since it was loaded (what the Open Inference
    Protocol's statistics extension reports): requests answered (``success``, their rows
    in ``inference_count``) and failed (``fail``, bad tensors included), onnxruntime
    executions (``compute_infer``; with adaptive batching, one for several requests) and
    their rows (``batches``). Updated from the event loop and from scoring threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.success = Duration()
        self.fail = Duration()
        self.compute_infer = Duration()
        self.inference_count = 0
        self.last_inference_ms = 0
        self.batches: dict[int, Duration] = {}
        """Executions by their number of rows."""

    @property
    def execution_count(self) -> int:
        return self.compute_infer.count

    def answered(self, *, rows: int, ns: int) -> None:
        with self._lock:
            self.success.add(ns)
            self.inference_count += rows
            self.last_inference_ms = time.time_ns() // 1_000_000

    def failed(self, *, ns: int) -> None:
        with self._lock:
            self.fail.add(ns)

    def executed(self, *, rows: int, ns: int) -> None:
        with self._lock:
            self.compute_infer.add(ns)
            self.batches.setdefault(rows, Duration()).add(ns)

    @classmethod
    def total(cls, parts: Iterable[InferenceStatistics]) -> InferenceStatistics:
        """The sum of ``parts`` (each read under its lock), e.g. one version loaded twice."""
        total = cls()
        for part in parts:
            with part._lock:
                total.success.absorb(part.success)
                total.fail.absorb(part.fail)
                total.compute_infer.absorb(part.compute_infer)
                total.inference_count += part.inference_count
                total.last_inference_ms = max(total.last_inference_ms, part.last_inference_ms)
                for rows, done in part.batches.items():
                    total.batches.setdefault(rows, Duration()).absorb(done)
        return total


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    sha256: str
    schema: ModelSchema
    session: ort.InferenceSession = field(repr=False)
    loaded_at: float = field(default_factory=time.time)
    row_seconds: float = 0.0
    """What scoring one row took once warm (the fastest of a few tries): the data plane
    scores a cheap model on the event loop and sends a costly one to a thread."""
    input_name: str = field(init=False, repr=False)
    """Read from the session once: asking it per request costs more than a small model."""
    stats: InferenceStatistics = field(
        default_factory=InferenceStatistics, init=False, repr=False, compare=False
    )
    """Since this model was loaded (a copy, as ``dataclasses.replace`` makes after the
    warm-up, starts at zero)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_name", self.session.get_inputs()[0].name)

    def predict(self, matrix: np.ndarray) -> list[dict[str, Any]]:
        return format_outputs(self.schema.task, self.run(matrix))

    def run(self, matrix: np.ndarray) -> list[np.ndarray]:
        """The session's raw output tensors, one row per input row."""
        started = time.perf_counter_ns()
        outputs = self.session.run(None, {self.input_name: matrix})
        self.stats.executed(rows=len(matrix), ns=time.perf_counter_ns() - started)
        return [np.asarray(o) for o in outputs]


def describe_session(session: ort.InferenceSession) -> tuple[list[TensorSpec], list[TensorSpec]]:
    def spec(arg: Any) -> TensorSpec:
        shape = [d if isinstance(d, int) else None for d in (arg.shape or [])]
        return TensorSpec(name=arg.name, dtype=_ORT_TYPES.get(arg.type, arg.type), shape=shape)

    return [spec(i) for i in session.get_inputs()], [spec(o) for o in session.get_outputs()]


class LoadFailed(IntegrityError):
    """A model that cannot be served; ``reason`` names the check that failed
    (``sha256_mismatch``, ``external_data``, ``session_open``, ``schema_mismatch``,
    ``warmup``)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def open_session(data: bytes) -> ort.InferenceSession:
    """An onnxruntime session of the self-contained model in ``data``. A model whose
    tensors name external data is refused (LoadFailed ``external_data``): onnxruntime,
    given bytes, would resolve a location such as ``logs/ingest.log`` against the working
    directory and serve the file's bytes as weights. Should a location ever get past that
    check, onnxruntime looks for it in an empty folder of this call's own, whatever the
    working directory."""
    try:
        refuse_external_data(data)
    except ExternalData as exc:
        raise LoadFailed(exc.message, reason="external_data") from None
    except (IntegrityError, RecursionError) as exc:  # not a protobuf, or nested past reason
        raise LoadFailed(f"cannot open ONNX model: {exc}", reason="session_open") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory(prefix="millrace-onnx-") as empty:
        options.add_session_config_entry(_EXTERNAL_DATA_FOLDER, empty)
        try:
            return ort.InferenceSession(
                data, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types
            message = f"cannot open ONNX model: {exc}".splitlines()[0]
            raise LoadFailed(message, reason="session_open") from None


def load_model(
    *, name: str, version: int, data: bytes, sha256: str, schema: ModelSchema
) -> LoadedModel:
    """Verify, open, check and warm up a model; raise IntegrityError on any failure."""
    actual = sha256_hex(data)
    if actual != sha256:
        raise LoadFailed(
            f"sha256 mismatch: expected {sha256}, got {actual}", reason="sha256_mismatch"
        )
    session = open_session(data)
    inputs, outputs = describe_session(session)
    if [i.name for i in inputs] != [i.name for i in schema.inputs] or [o.name for o in outputs] != [
        o.name for o in schema.outputs
    ]:
        raise LoadFailed(
            f"model schema differs from its event: session has inputs "
            f"{[i.name for i in inputs]} outputs {[o.name for o in outputs]}",
            reason="schema_mismatch",
        )
    model = LoadedModel(name=name, version=version, sha256=sha256, schema=schema, session=session)
    row = np.zeros((1, len(schema.features)), dtype=np.float32)
    try:
        model.predict(row)
    except Exception as exc:  # noqa: BLE001 - any failure of the warm-up refuses the model
        raise LoadFailed(f"warm-up failed: {exc}", reason="warmup") from None
    return dataclasses.replace(model, row_seconds=_row_seconds(model, row))


def _row_seconds(model: LoadedModel, row: np.ndarray, *, tries: int = 5) -> float:
    """The fastest of ``tries`` runs: the model's own cost, not the machine's hiccups."""
    fastest = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        model.run(row)
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


_PLAIN_NUMBERS = frozenset({int, float})
"""Exact types: bool is an int subclass, and a subclass may carry any conversion."""


def matrix_from_instances(schema: ModelSchema, instances: Sequence[dict[str, Any]]) -> np.ndarray:
    """Rows in the model's feature order, a null value NaN (missing: the model imputes
    it); a feature that is absent, not a number, not finite or beyond float32 (1e39
    would be scored as inf) is named."""
    if not instances:
        raise InvalidInput("at least one instance is required", field="instances")
    rows = _plain_rows(schema.features, instances)
    if rows is None:
        _check_instances(schema.features, instances)
        matrix = _matrix_slowly(schema.features, instances)
    else:
        try:
            with np.errstate(over="ignore"):
                matrix = np.array(rows, dtype=np.float32)
        except OverflowError:  # an integer beyond even float64
            matrix = _matrix_slowly(schema.features, instances)
    if not np.isfinite(matrix).all():
        _check_finite(schema.features, instances, matrix)
    return matrix


def _plain_rows(features: list[str], instances: Sequence[dict[str, Any]]) -> list[list[Any]] | None:
    """The values in feature order when every one is a plain int or float, else None."""
    try:
        rows = [[instance[name] for name in features] for instance in instances]
    except (KeyError, TypeError):
        return None
    return rows if all(type(v) in _PLAIN_NUMBERS for row in rows for v in row) else None


def _check_instances(features: list[str], instances: Sequence[dict[str, Any]]) -> None:
    """Raise for the first instance or feature that is missing or not a number."""
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise InvalidInput("each instance must be an object", field=f"instances[{i}]")
        for name in features:
            where = f"instances[{i}].{name}"
            if name not in instance:
                raise InvalidInput(f"missing feature '{name}'", field=where)
            value = instance[name]
            if value is None:
                continue  # missing: NaN
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"feature '{name}' must be a number", field=where)


def _matrix_slowly(features: list[str], instances: Sequence[dict[str, Any]]) -> np.ndarray:
    """Value by value (numbers of any numeric type), naming one numpy cannot convert."""
    matrix = np.empty((len(instances), len(features)), dtype=np.float32)
    for i, instance in enumerate(instances):
        for j, name in enumerate(features):
            value = instance[name]
            try:
                with np.errstate(over="ignore"):
                    matrix[i, j] = np.nan if value is None else value
            except OverflowError:
                raise InvalidInput(
                    f"feature '{name}' is out of range", field=f"instances[{i}].{name}"
                ) from None
    return matrix


def _check_finite(
    features: list[str], instances: Sequence[dict[str, Any]], matrix: np.ndarray
) -> None:
    """Names the first value that is NaN or infinite as sent, or became inf in float32;
    a NaN from a null (missing) value is what it should be."""
    for i, j in np.argwhere(~np.isfinite(matrix)):
        name = features[j]
        value = instances[i][name]
        if value is None:
            continue
        problem = "is not a finite number" if not math.isfinite(value) else "is out of range"
        raise InvalidInput(
            f"feature '{name}' {problem} (the model takes float32)", field=f"instances[{i}].{name}"
        )


def matrix_from_columns(schema: ModelSchema, columns: Mapping[str, Any], rows: int) -> np.ndarray:
    """``matrix_from_instances`` for columnar data (a Parquet or CSV batch): the feature
    columns in the model's order, a null NaN (missing); a feature that is absent, not
    numeric, not finite or beyond float32 is named with the first bad row."""
    matrix = np.empty((rows, len(schema.features)), dtype=np.float32)
    for j, name in enumerate(schema.features):
        if name not in columns:
            raise InvalidInput(f"missing feature '{name}' (a column of that name)", field=name)
        column = columns[name]
        try:
            values = np.asarray(column, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInput(f"feature '{name}' must be numeric", field=name) from None
        if np.isinf(values).any():
            i = int(np.flatnonzero(np.isinf(values))[0])
            raise InvalidInput(
                f"feature '{name}' is not a finite number", field=f"rows[{i}].{name}"
            )
        with np.errstate(over="ignore"):
            matrix[:, j] = values
    overflow = np.isinf(matrix)
    if overflow.any():
        i, j = (int(k) for k in np.argwhere(overflow)[0])
        name = schema.features[j]
        raise InvalidInput(
            f"feature '{name}' is out of range (the model takes float32)", field=f"rows[{i}].{name}"
        )
    return matrix


def refuse_unanswered_missing(
    features: list[str], matrix: np.ndarray, outputs: list[np.ndarray]
) -> None:
    """A null (missing) value is the model's to impute; a model that cannot (it answers
    NaN for that row) gets a 422 naming the value, never a null answer."""
    missing = np.isnan(matrix)
    if not missing.any():
        return
    unanswered = np.zeros(len(matrix), dtype=bool)
    for output in outputs:
        if output.dtype.kind == "f":
            unanswered |= np.isnan(output.reshape(len(matrix), -1)).any(axis=1)
    rows = np.flatnonzero(unanswered & missing.any(axis=1))
    if len(rows):
        i = int(rows[0])
        name = features[int(np.flatnonzero(missing[i])[0])]
        raise InvalidInput(
            f"feature '{name}' is null (missing), and this model gives no answer for a "
            "missing value: send a number, or a model that imputes it (the trainer's do)",
            field=f"instances[{i}].{name}",
        )


def format_outputs(task: str, outputs: list[Any]) -> list[dict[str, Any]]:
    if task == "regression":
        return [{"value": v} for v in np.asarray(outputs[0], dtype=np.float64).reshape(-1).tolist()]
    labels = np.asarray(outputs[0]).reshape(-1).tolist()
    if len(outputs) < 2:
        return [{"label": label} for label in labels]
    probabilities = np.asarray(outputs[1], dtype=np.float64).tolist()
    return [
        {"label": label, "probabilities": [round(p, 6) for p in row]}
        for label, row in zip(labels, probabilities, strict=True)
    ]


class ModelSlots:
    """The models a process serves, keyed by (name, alias); swaps are one assignment."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str], LoadedModel] = {}

    def get(self, name: str, alias: str = "production") -> LoadedModel:
        try:
            return self._slots[(name, alias)]
        except KeyError:
            raise NotFound(f"model '{name}' has no loaded '{alias}' version") from None

    def find(self, name: str, alias: str = "production") -> LoadedModel | None:
        return self._slots.get((name, alias))

    def swap(self, name: str, alias: str, model: LoadedModel) -> LoadedModel | None:
        previous = self._slots.get((name, alias))
        self._slots[(name, alias)] = model
        return previous

    def find_version(self, name: str, version: int) -> LoadedModel | None:
        """The loaded model of ``name`` at ``version``, under whichever alias holds it."""
        return next(
            (m for (n, _a), m in list(self._slots.items()) if n == name and m.version == version),
            None,
        )

    def aliases_of(self, name: str) -> dict[str, LoadedModel]:
        return {a: m for (n, a), m in list(self._slots.items()) if n == name}

    def remove(self, name: str, alias: str) -> LoadedModel | None:
        return self._slots.pop((name, alias), None)

    def items(self) -> list[tuple[tuple[str, str], LoadedModel]]:
        return list(self._slots.items())

    def __len__(self) -> int:
        return len(self._slots)
