"""Triton's extensions of the Open Inference Protocol that its clients call
(``tritonclient``'s ``get_model_repository_index``, ``get_model_config`` and
``get_inference_statistics``), over what this process has loaded. No I/O: the routes are
``inference_protocol.v2_router``'s.

- The repository index lists the loaded models, each version ``READY``. Millrace's model
  repository is the registry: which versions a process loads follows it (and serving's
  ``/v1/admin`` routes), so the extension's load and unload are not offered, and the
  ``model_repository`` extension is not advertised.
- A model's configuration is read from its onnxruntime session: its inputs and outputs,
  their Triton data types and dims (-1 for any size, the rows first: ``max_batch_size``
  0), and the loaded versions as a ``specific`` version policy.
- Statistics are what each loaded version did since it was loaded
  (``scoring.InferenceStatistics``): requests answered and failed with their cumulative
  time, rows scored, onnxruntime executions and their time, per batch size. Serving does
  not measure queueing, input or output preparation apart from the request, or a cache
  (it has none): those durations are 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from millrace_common.errors import NotFound
from millrace_common.scoring import Duration, InferenceStatistics, LoadedModel, ModelSlots

READY = "READY"
_TRITON_TYPES = {
    "tensor(bool)": "TYPE_BOOL",
    "tensor(uint8)": "TYPE_UINT8",
    "tensor(uint16)": "TYPE_UINT16",
    "tensor(uint32)": "TYPE_UINT32",
    "tensor(uint64)": "TYPE_UINT64",
    "tensor(int8)": "TYPE_INT8",
    "tensor(int16)": "TYPE_INT16",
    "tensor(int32)": "TYPE_INT32",
    "tensor(int64)": "TYPE_INT64",
    "tensor(float16)": "TYPE_FP16",
    "tensor(float)": "TYPE_FP32",
    "tensor(double)": "TYPE_FP64",
    "tensor(string)": "TYPE_STRING",
}
"""onnxruntime's tensor types as Triton's model configuration names them."""


# -- the documents -------------------------------------------------------------------------


class RepositoryIndexRequest(BaseModel):
    ready: bool = Field(False, description="only models ready for inference: every one listed is")


class RepositoryModel(BaseModel):
    name: str
    version: str
    state: str = Field(description="READY: loaded, and answering")
    reason: str = ""


class ConfigTensor(BaseModel):
    name: str
    data_type: str = Field(description="TYPE_FP32, TYPE_INT64, TYPE_STRING …")
    dims: list[int] = Field(description="-1 for a dimension of any size (the rows first)")


class ModelConfig(BaseModel):
    """The parts of Triton's model configuration that describe an ONNX model served by
    onnxruntime."""

    name: str
    platform: str = "onnxruntime_onnx"
    backend: str = "onnxruntime"
    max_batch_size: int = Field(0, description="0: each tensor's dims include the rows")
    version_policy: dict[str, Any] = Field(description="specific: the loaded versions")
    input: list[ConfigTensor]
    output: list[ConfigTensor]
    parameters: dict[str, dict[str, str]] = Field(
        description="alias (the alias that answers) and features (comma-separated)"
    )


class DurationStat(BaseModel):
    count: int
    ns: int

    @classmethod
    def of(cls, duration: Duration | None = None) -> DurationStat:
        return cls(count=duration.count, ns=duration.ns) if duration else cls(count=0, ns=0)


class InferenceStats(BaseModel):
    success: DurationStat = Field(description="requests answered, parse to response")
    fail: DurationStat = Field(description="requests that failed, invalid tensors included")
    queue: DurationStat = Field(description="not measured apart from the request: 0")
    compute_input: DurationStat = Field(description="not measured apart from the request: 0")
    compute_infer: DurationStat = Field(description="onnxruntime executions")
    compute_output: DurationStat = Field(description="not measured apart from the request: 0")
    cache_hit: DurationStat = Field(description="no response cache: 0")
    cache_miss: DurationStat = Field(description="no response cache: 0")


class BatchStats(BaseModel):
    batch_size: int = Field(description="rows per onnxruntime execution")
    compute_input: DurationStat
    compute_infer: DurationStat
    compute_output: DurationStat


class ModelStats(BaseModel):
    name: str
    version: str
    last_inference: int = Field(description="ms since the epoch; 0 before the first")
    inference_count: int = Field(description="rows answered")
    execution_count: int = Field(description="onnxruntime executions (a batch is one)")
    inference_stats: InferenceStats
    batch_stats: list[BatchStats]


class StatisticsResponse(BaseModel):
    model_stats: list[ModelStats]


# -- building them ---------------------------------------------------------------------------


def _versions(models: Iterable[LoadedModel]) -> dict[tuple[str, int], list[LoadedModel]]:
    """The loaded models by (name, version): a version loaded under two slots is one."""
    found: dict[tuple[str, int], dict[int, LoadedModel]] = {}
    for model in models:
        found.setdefault((model.name, model.version), {})[id(model)] = model
    return {key: list(found[key].values()) for key in sorted(found)}


def repository_index(slots: ModelSlots) -> list[RepositoryModel]:
    return [
        RepositoryModel(name=name, version=str(version), state=READY)
        for name, version in _versions(m for _slot, m in slots.items())
    ]


def model_config(model: LoadedModel, *, alias: str | None, versions: list[int]) -> ModelConfig:
    session = model.session
    return ModelConfig(
        name=model.name,
        version_policy={"specific": {"versions": versions}},
        input=[_tensor(arg) for arg in session.get_inputs()],
        output=[_tensor(arg) for arg in session.get_outputs()],
        parameters={
            "alias": {"string_value": alias or ""},
            "features": {"string_value": ",".join(model.schema.features)},
        },
    )


def _tensor(arg: Any) -> ConfigTensor:
    return ConfigTensor(
        name=arg.name,
        data_type=_TRITON_TYPES.get(arg.type, "TYPE_INVALID"),
        dims=[d if isinstance(d, int) else -1 for d in (arg.shape or [])],
    )


def statistics(
    slots: ModelSlots, *, name: str | None = None, version: int | None = None
) -> StatisticsResponse:
    """Every loaded version's statistics, or ``name``'s, or that ``version``'s; NotFound
    when a model or version asked for is not loaded."""
    loaded = _versions(
        m
        for (n, _alias), m in slots.items()
        if (name is None or n == name) and (version is None or m.version == version)
    )
    if name is not None and not loaded:
        if version is None:
            raise NotFound(f"model '{name}' has no loaded version")
        raise NotFound(f"model '{name}' has no loaded version {version}", field="version")
    return StatisticsResponse(
        model_stats=[
            _model_stats(n, v, InferenceStatistics.total(m.stats for m in models))
            for (n, v), models in loaded.items()
        ]
    )


def _model_stats(name: str, version: int, stats: InferenceStatistics) -> ModelStats:
    unmeasured = DurationStat.of()
    return ModelStats(
        name=name,
        version=str(version),
        last_inference=stats.last_inference_ms,
        inference_count=stats.inference_count,
        execution_count=stats.execution_count,
        inference_stats=InferenceStats(
            success=DurationStat.of(stats.success),
            fail=DurationStat.of(stats.fail),
            queue=unmeasured,
            compute_input=unmeasured,
            compute_infer=DurationStat.of(stats.compute_infer),
            compute_output=unmeasured,
            cache_hit=unmeasured,
            cache_miss=unmeasured,
        ),
        batch_stats=[
            BatchStats(
                batch_size=rows,
                compute_input=unmeasured,
                compute_infer=DurationStat.of(done),
                compute_output=unmeasured,
            )
            for rows, done in sorted(stats.batches.items())
        ],
    )
