"""The ONNX scoring core shared by serving and the edge agent.

A model is loaded beside the running one (verify digest → open session → check its
schema → warm up) and then swapped in with a single reference assignment, so requests
in flight finish on the session they started with.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from millrace_common.contracts import ModelSchema, TensorSpec
from millrace_common.errors import IntegrityError, InvalidInput, NotFound
from millrace_common.objectstore import sha256_hex

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(string)": "string",
}


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    sha256: str
    schema: ModelSchema
    session: ort.InferenceSession = field(repr=False)
    loaded_at: float = field(default_factory=time.time)

    def predict(self, matrix: np.ndarray) -> list[dict[str, Any]]:
        return format_outputs(self.schema.task, self.run(matrix))

    def run(self, matrix: np.ndarray) -> list[np.ndarray]:
        """The session's raw output tensors, one row per input row."""
        outputs = self.session.run(None, {self.session.get_inputs()[0].name: matrix})
        return [np.asarray(o) for o in outputs]


def describe_session(session: ort.InferenceSession) -> tuple[list[TensorSpec], list[TensorSpec]]:
    def spec(arg: Any) -> TensorSpec:
        shape = [d if isinstance(d, int) else None for d in (arg.shape or [])]
        return TensorSpec(name=arg.name, dtype=_ORT_TYPES.get(arg.type, arg.type), shape=shape)

    return [spec(i) for i in session.get_inputs()], [spec(o) for o in session.get_outputs()]


class LoadFailed(IntegrityError):
    """A model that cannot be served; ``reason`` names the check that failed
    (``sha256_mismatch``, ``session_open``, ``schema_mismatch``, ``warmup``)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def open_session(data: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types
        raise LoadFailed(f"cannot open ONNX model: {exc}", reason="session_open") from None


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
    try:
        model.predict(np.zeros((1, len(schema.features)), dtype=np.float32))
    except Exception as exc:
        raise LoadFailed(f"warm-up failed: {exc}", reason="warmup") from None
    return model


def matrix_from_instances(schema: ModelSchema, instances: Sequence[dict[str, Any]]) -> np.ndarray:
    """Rows in the model's feature order; a missing or non-numeric feature is named."""
    if not instances:
        raise InvalidInput("at least one instance is required", field="instances")
    matrix = np.empty((len(instances), len(schema.features)), dtype=np.float32)
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise InvalidInput("each instance must be an object", field=f"instances[{i}]")
        for j, name in enumerate(schema.features):
            value = instance.get(name)
            if value is None:
                raise InvalidInput(f"missing feature '{name}'", field=f"instances[{i}].{name}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(
                    f"feature '{name}' must be a number", field=f"instances[{i}].{name}"
                )
            matrix[i, j] = value
    return matrix


def format_outputs(task: str, outputs: list[Any]) -> list[dict[str, Any]]:
    if task == "regression":
        values = np.asarray(outputs[0]).reshape(-1)
        return [{"value": float(v)} for v in values]
    labels = np.asarray(outputs[0]).reshape(-1)
    probabilities = np.asarray(outputs[1]) if len(outputs) > 1 else None
    rows = []
    for i, label in enumerate(labels):
        row: dict[str, Any] = {"label": label.item()}
        if probabilities is not None:
            row["probabilities"] = [round(float(p), 6) for p in probabilities[i]]
        rows.append(row)
    return rows


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
