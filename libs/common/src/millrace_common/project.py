"""The project folder: datasets, feature sets and model specs (``millrace.yaml``)."""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from millrace_common.errors import InvalidInput, NotFound

FieldType = Literal["float", "int", "str", "bool"]
RESERVED_KEYS = ("dataset", "event_id")  # keys of a raw record that are not dataset fields
Aggregation = Literal["mean", "max", "min", "sum", "std", "count", "last", "since_last", "latest"]
EMPTY_IS_ZERO = frozenset({"count", "sum"})
"""What an aggregation of no values is: 0.0 for these, missing (null) for the others (a
mean, a minimum or a last value of nothing is unknown, never 0)."""
Category = str | int | bool
_PY_TYPES: dict[str, type] = {"float": float, "int": int, "str": str, "bool": bool}
_WINDOW = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def window_seconds(text: str) -> int:
    """``30s``, ``10m``, ``2h``, ``1d`` in seconds; ValueError for anything else."""
    match = _WINDOW.fullmatch(text)
    if match is None:
        raise ValueError("window must look like 30s, 10m, 2h or 1d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class Dataset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    entity: str = "entity_id"
    time: str = "ts"
    fields: dict[str, FieldType]
    labels: dict[str, FieldType] = Field(default_factory=dict)
    optional: list[str] = Field(default_factory=list)
    """Fields a record may lack (absent or null): their features see a missing value."""

    @model_validator(mode="after")
    def _optional_are_fields(self) -> Dataset:
        unknown = [name for name in self.optional if name not in self.fields]
        if unknown:
            raise ValueError(f"optional names {unknown}, not fields of the dataset")
        return self

    def all_fields(self) -> dict[str, FieldType]:
        return {**self.fields, **self.labels}

    @functools.cached_property
    def known_keys(self) -> frozenset[str]:
        """Every key a record of this dataset may carry."""
        return frozenset({*self.fields, *self.labels, self.entity, self.time, *RESERVED_KEYS})

    @functools.cached_property
    def field_checks(self) -> tuple[FieldCheck, ...]:
        """The fields as the validator's fast path checks them."""
        optional = set(self.optional)
        return tuple(
            FieldCheck.of(name, kind, optional=name in optional)
            for name, kind in self.fields.items()
        )

    @functools.cached_property
    def label_checks(self) -> tuple[FieldCheck, ...]:
        return tuple(FieldCheck.of(name, kind) for name, kind in self.labels.items())


class FieldCheck(NamedTuple):
    """A field and the exact Python types a valid value of it has once decoded from JSON
    (a bool is not an int here: ``type(True) is bool``); ``to_float`` for ints taken as
    floats. What ``coerce_value`` accepts, without its error messages."""

    name: str
    types: tuple[type, ...]
    to_float: bool
    optional: bool = False

    @classmethod
    def of(cls, name: str, kind: FieldType, *, optional: bool = False) -> FieldCheck:
        types = {"float": (float, int), "int": (int,), "bool": (bool,), "str": (str,)}[kind]
        return cls(name, types, kind == "float", optional)


class FeatureSpec(BaseModel):
    """``agg`` of a ``field`` over the ``window`` up to each event (``count`` with
    ``equals``: how many readings had that value; ``since_last``: seconds since the
    previous reading with the field), or a ``ratio`` of two other features."""

    model_config = ConfigDict(extra="forbid")
    name: str
    field: str = ""
    agg: Aggregation | None = None
    window: str | None = None
    """``30s``, ``10m``, ``2h``, ``1d`` (default ``10m``); none for ``latest``."""
    equals: Category | None = None
    ratio: tuple[str, str] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> FeatureSpec:
        if self.ratio is not None:
            if self.field or self.agg is not None or self.equals is not None:
                raise ValueError("a ratio names two features: no field, agg or equals")
        elif not self.field or self.agg is None:
            raise ValueError("a feature needs a field and an agg (or a ratio)")
        elif self.equals is not None and self.agg != "count":
            raise ValueError("equals counts readings with that value: agg must be count")
        elif self.agg == "latest" and self.window is not None:
            raise ValueError("latest is the newest value ever seen: it takes no window")
        return self

    @field_validator("window")
    @classmethod
    def _window_format(cls, value: str | None) -> str | None:
        if value is not None and not _WINDOW.fullmatch(value):
            raise ValueError("window must look like 30s, 10m, 2h or 1d")
        return value

    @property
    def windowed(self) -> bool:
        """Whether it reads a window (not a ratio, not the latest value ever)."""
        return self.ratio is None and self.agg != "latest"

    @property
    def window_seconds(self) -> int:
        return window_seconds(self.window or "10m") if self.windowed else 0


class FeatureSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    version: int = 1
    dataset: str
    label: str | None = None
    features: list[FeatureSpec]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def max_window_seconds(self) -> int:
        return max((f.window_seconds for f in self.features if f.windowed), default=0)

    @property
    def latest_fields(self) -> list[str]:
        """The fields whose newest value is kept however old it is (``agg: latest``)."""
        return sorted({f.field for f in self.features if f.agg == "latest"})


class DriftPolicy(BaseModel):
    """Retrain on data drift: when a feature's Population Stability Index over the newest
    ``window`` of event time (at least ``min_rows`` rows), against the latest snapshot's
    distribution, exceeds ``psi``."""

    model_config = ConfigDict(extra="forbid")
    psi: float = Field(default=0.2, gt=0)
    window: str = "1h"
    min_rows: int = Field(default=200, ge=1)

    @field_validator("window")
    @classmethod
    def _window_format(cls, value: str) -> str:
        if not _WINDOW.fullmatch(value) or window_seconds(value) == 0:
            raise ValueError("window must look like 30s, 10m, 2h or 1d")
        return value

    @property
    def window_seconds(self) -> int:
        return window_seconds(self.window)


class QualityPolicy(BaseModel):
    """Retrain when production's live ``metric`` (the model's) over the last monitoring
    window, on at least ``min_labelled`` labelled predictions, is worse than
    ``threshold`` (below it for a metric to maximize, above for one to minimize). The
    registry's monitor asks; not again sooner than ``at_most_every`` (or the window)."""

    model_config = ConfigDict(extra="forbid")
    threshold: float
    min_labelled: int = Field(default=200, ge=1)


class RetrainPolicy(BaseModel):
    """When features asks for a new model: after ``every_n_labelled_rows`` new labelled
    rows (null or 0: never by count), and/or ``every`` so long (``30m``, ``24h``, ``7d``)
    after the last snapshot if labelled rows arrived since, and/or on ``drift``;
    whichever comes first, but by count or schedule never sooner than ``at_most_every``
    after the last snapshot (a stream that brings thousands of labelled rows a second
    would otherwise ask for a model every few seconds). Training on demand
    (``millrace train``) works whatever the policy."""

    model_config = ConfigDict(extra="forbid")
    every_n_labelled_rows: int | None = 1000
    every: str | None = None
    at_most_every: str | None = None
    drift: DriftPolicy | None = None
    on_quality: QualityPolicy | None = None
    lookback: str | None = None
    """A snapshot holds the labelled rows of this much event time up to its newest (``90d``,
    ``1h``); none: every labelled row. After the world changed, train on the new one."""

    @field_validator("every", "at_most_every", "lookback")
    @classmethod
    def _every_format(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not _WINDOW.fullmatch(value):
            raise ValueError(f"{info.field_name} must look like 30s, 10m, 2h or 1d")
        return value

    @property
    def every_seconds(self) -> int | None:
        return window_seconds(self.every) if self.every is not None else None

    @property
    def lookback_seconds(self) -> int | None:
        return window_seconds(self.lookback) if self.lookback is not None else None

    @property
    def at_most_every_seconds(self) -> int:
        return window_seconds(self.at_most_every) if self.at_most_every is not None else 0


class RollbackPolicy(BaseModel):
    """Move production back to the version it replaced when the new one's live ``metric``
    (the model's) is worse than its predecessor's was by more than ``margin``, once each
    has at least ``min_labelled`` labelled predictions in production."""

    model_config = ConfigDict(extra="forbid")
    margin: float = Field(default=0.05, ge=0)
    min_labelled: int = Field(default=200, ge=1)


class CanaryPolicy(BaseModel):
    """A version that wins the promotion rule while a production version serves becomes
    the challenger with ``steps[0]`` percent of production's traffic; at every check the
    monitor compares its labelled predictions since the step began with production's over
    the same time. Once each side has ``min_labelled``, a canary worse with ``confidence``
    is stopped; otherwise it moves to the next step, and after the last it takes
    production."""

    model_config = ConfigDict(extra="forbid")
    steps: list[float] = Field(default_factory=lambda: [10.0, 50.0], min_length=1)
    min_labelled: int = Field(default=100, ge=1)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)

    @field_validator("steps")
    @classmethod
    def _rising(cls, steps: list[float]) -> list[float]:
        if any(not 0 < s < 100 for s in steps) or steps != sorted(set(steps)):
            raise ValueError("steps are rising percents between 0 and 100 (100 is the promotion)")
        return steps


class MonitoringSpec(BaseModel):
    """Live quality: a label for an entity at event time ``ts`` is the ground truth of the
    predictions made for that entity from ``ts`` until ``label_horizon`` later (or until
    the entity's next label); a label naming a request id is the ground truth of that
    request. Quality is reported per ``window`` of prediction time."""

    model_config = ConfigDict(extra="forbid")
    label_horizon: str = "1h"
    window: str = "1h"
    rollback: RollbackPolicy | None = None
    canary: CanaryPolicy | None = None

    @field_validator("label_horizon", "window")
    @classmethod
    def _duration(cls, value: str, info: ValidationInfo) -> str:
        if not _WINDOW.fullmatch(value) or window_seconds(value) == 0:
            raise ValueError(f"{info.field_name} must look like 30s, 10m, 2h or 1d")
        return value

    @property
    def label_horizon_seconds(self) -> int:
        return window_seconds(self.label_horizon)

    @property
    def window_seconds(self) -> int:
        return window_seconds(self.window)


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    name: str = ""
    feature_set: str
    task: Literal["classification", "regression"] = "classification"
    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    metric: str = "f1"
    direction: Literal["maximize", "minimize"] = "maximize"
    promotion_margin: float = 0.0
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    retrain: RetrainPolicy = Field(default_factory=RetrainPolicy)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)


class Project(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str = "default"
    datasets: dict[str, Dataset]
    feature_sets: dict[str, FeatureSet] = Field(default_factory=dict)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    source_sha256: str = ""
    root: str = ""

    def model_post_init(self, __context: Any) -> None:
        for collection in (self.datasets, self.feature_sets, self.models):
            for name, item in collection.items():
                item.name = name

    def dataset(self, name: str) -> Dataset:
        try:
            return self.datasets[name]
        except KeyError:
            raise NotFound(f"unknown dataset '{name}'", field="dataset") from None

    def feature_set(self, name: str) -> FeatureSet:
        try:
            return self.feature_sets[name]
        except KeyError:
            raise NotFound(f"unknown feature set '{name}'", field="feature_set") from None

    def model(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            raise NotFound(f"unknown model '{name}'", field="model") from None

    def feature_sets_of(self, dataset: str) -> list[FeatureSet]:
        return [fs for fs in self.feature_sets.values() if fs.dataset == dataset]


def load_project(folder: str | Path) -> Project:
    """Read ``millrace.yaml`` from a project folder; raise InvalidInput naming the problem."""
    path = Path(folder) / "millrace.yaml"
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read project file {path}: {exc.strerror}") from None
    try:
        project = Project.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        line = _line_of(text, first["loc"])
        raise InvalidInput(f"{path}{line}: {where}: {first['msg']}", field=where) from None
    project.source_sha256 = hashlib.sha256(text).hexdigest()
    project.root = str(Path(folder).resolve())
    try:
        for fs in project.feature_sets.values():
            _check_feature_set(project, fs)
    except InvalidInput as exc:
        loc = tuple(int(p) if p.isdigit() else p for p in (exc.field or "").split(".") if p)
        raise InvalidInput(f"{path}{_line_of(text, loc)}: {exc.message}", field=exc.field) from None
    return project


def _line_of(text: bytes, loc: tuple[int | str, ...]) -> str:
    """`` line N`` of the YAML node at ``loc`` (its deepest part the file has), or ``""``."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return ""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = [v for k, v in node.value if getattr(k, "value", None) == str(part)]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            found = node.value[part : part + 1]
        else:
            found = []
        if not found:
            break
        node = found[0]
        line = node.start_mark.line + 1
    return f" line {line}" if line is not None else ""


def _check_feature_set(project: Project, fs: FeatureSet) -> None:
    dataset = project.datasets.get(fs.dataset)
    if dataset is None:
        raise InvalidInput(
            f"feature set '{fs.name}' reads unknown dataset '{fs.dataset}'",
            field=f"feature_sets.{fs.name}.dataset",
        )
    aggregated = {f.name for f in fs.features if f.ratio is None}
    for i, feature in enumerate(fs.features):
        where = f"feature_sets.{fs.name}.features.{i}"
        if feature.ratio is not None:
            unknown = [name for name in feature.ratio if name not in aggregated]
            if unknown:
                raise InvalidInput(
                    f"ratio '{feature.name}' of '{fs.name}' divides {unknown}, not aggregated "
                    f"features of the set ({sorted(aggregated)})",
                    field=f"{where}.ratio",
                )
            continue
        if feature.field not in dataset.fields:
            raise InvalidInput(
                f"feature '{feature.name}' of '{fs.name}' reads unknown field '{feature.field}'",
                field=f"{where}.field",
            )
        kind = dataset.fields[feature.field]
        if kind == "str" and feature.agg not in ("count", "since_last"):
            raise InvalidInput(
                f"feature '{feature.name}' of '{fs.name}': {feature.agg} cannot aggregate "
                f"'{feature.field}', a str field (count it, with equals: a category, or take "
                "the time since_last)",
                field=f"{where}.agg",
            )
        if feature.equals is not None and not _same_kind(feature.equals, kind):
            raise InvalidInput(
                f"feature '{feature.name}' of '{fs.name}': equals {feature.equals!r} is not "
                f"a value of '{feature.field}', a {kind} field",
                field=f"{where}.equals",
            )
    if fs.label is not None and fs.label not in dataset.labels:
        raise InvalidInput(f"label '{fs.label}' is not a label of '{dataset.name}'")


def _same_kind(value: Category, kind: FieldType) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, str) if kind == "str" else isinstance(value, int | float)


def coerce_value(value: Any, kind: FieldType) -> Any:
    """Check one field value against its declared type (ints are accepted as floats)."""
    if value is None:
        return None
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "str" and isinstance(value, str):
        return value
    raise ValueError(f"expected {kind}, got {type(value).__name__}")


def parse_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        from datetime import UTC

        return datetime.fromtimestamp(value, tz=UTC)
    else:
        raise ValueError("expected an ISO-8601 timestamp")
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed
