"""Event contracts: one pydantic model per topic, each with ``schema_version``.

The JSON Schema of every contract is committed under ``libs/common/schemas`` and a
test fails when the models drift from it (``make schemas`` regenerates them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RAW = "raw"
FEATURES = "features"
TRAIN_REQUESTS = "train-requests"
MODEL_PUBLISHED = "model-published"
PREDICTIONS = "predictions"
LABELS = "labels"
DLQ = "dlq"
ALL_TOPICS = (RAW, FEATURES, TRAIN_REQUESTS, MODEL_PUBLISHED, PREDICTIONS, LABELS, DLQ)


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class RawRecord(BaseModel):
    """A record on ``raw``: plain JSON from any client; dataset fields are top-level."""

    model_config = ConfigDict(extra="allow")
    schema_version: int = 1
    dataset: str
    entity_id: str
    ts: datetime
    event_id: str | None = None


class FeatureRowComputed(Contract):
    schema_version: Literal[1] = 1
    event_id: str
    feature_set: str
    feature_set_version: int
    entity_id: str
    event_time: datetime
    features: dict[str, float | None]
    """null: missing (an empty window's mean, a first event's time since the last one)."""
    label: float | None = None


class SnapshotRef(Contract):
    uri: str
    sha256: str
    rows: int
    cutoff: datetime
    feature_set: str
    feature_set_version: int


class TrainRequest(Contract):
    schema_version: Literal[1] = 1
    request_id: str
    model: str
    snapshot: SnapshotRef
    reason: str
    requested_by: str
    requested_at: datetime
    upload_id: str | None = None
    """Evaluate this model upload of the registry on the snapshot's holdout instead of
    fitting the model spec; the version it registers is the uploaded file."""


class TensorSpec(Contract):
    name: str
    dtype: str
    shape: list[int | None]


class ModelSchema(Contract):
    """What a model takes and gives: named features in order, and its output tensors."""

    features: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    task: Literal["classification", "regression"]


class ModelPublished(Contract):
    schema_version: Literal[1] = 1
    event_id: str
    name: str
    version: int
    alias: str
    artifact_uri: str
    sha256: str
    size: int
    model_schema: ModelSchema = Field(alias="schema")
    lineage_id: str
    published_at: datetime
    reason: str = ""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)


class PredictionLogged(Contract):
    schema_version: Literal[1] = 1
    request_id: str
    model: str
    version: int
    alias: str | None
    inputs_sha256: str
    outputs: list[dict[str, Any]]
    latency_ms: float
    at: datetime
    site: str | None = None
    """The edge site whose agent answered; None when a serving pod did."""
    entity_ids: list[str] | None = None
    """One per output row, when the request named entities (their online features)."""
    inputs: list[list[float | None]] | None = None
    """Each row's feature values, in the model's feature order (null: missing): what the
    registry's monitor measures the drift of served inputs on."""


class LabelObserved(Contract):
    """Ground truth that arrived after the prediction: the label of one of a dataset's
    label fields, for a request id that serving answered (and the row or entity in it),
    or for an entity at an event time (matched to the predictions made for that entity
    within the model's ``monitoring.label_horizon`` after it)."""

    schema_version: Literal[1] = 1
    event_id: str = Field(description="unique per label: a second one with it is a duplicate")
    dataset: str
    field: str = Field(description="the dataset's label field")
    value: float | int | str | bool
    request_id: str | None = None
    row: int | None = Field(None, ge=0, description="the row of a request that had several")
    entity_id: str | None = None
    ts: datetime | None = Field(None, description="the event time the label is for")
    at: datetime = Field(description="when the label was observed")

    @model_validator(mode="after")
    def _names_what_it_labels(self) -> LabelObserved:
        if self.request_id is None and (self.entity_id is None or self.ts is None):
            raise ValueError("a label names a request_id, or an entity_id and a ts")
        return self


class DeadLetter(Contract):
    schema_version: Literal[1] = 1
    original: str = Field(description="the original value, base64")
    original_key: str | None = None
    error: str
    source_topic: str
    partition: int
    offset: int
    consumer: str
    at: datetime


TOPIC_CONTRACTS: dict[str, type[BaseModel]] = {
    RAW: RawRecord,
    FEATURES: FeatureRowComputed,
    TRAIN_REQUESTS: TrainRequest,
    MODEL_PUBLISHED: ModelPublished,
    PREDICTIONS: PredictionLogged,
    LABELS: LabelObserved,
    DLQ: DeadLetter,
}


EVENT_TYPES: dict[str, str] = {
    RAW: "millrace.record.received",
    FEATURES: "millrace.feature_row.computed",
    TRAIN_REQUESTS: "millrace.train.requested",
    MODEL_PUBLISHED: "millrace.model.published",
    PREDICTIONS: "millrace.prediction.logged",
    LABELS: "millrace.label.observed",
    DLQ: "millrace.message.dead_lettered",
}
"""The ``ce_type`` header of each topic's messages: one spelling, whoever produces."""


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each topic's contract, keyed by topic."""
    return {
        topic: model.model_json_schema(by_alias=True) for topic, model in TOPIC_CONTRACTS.items()
    }


class AliasTarget(Contract):
    """What an alias points at (registry REST): everything a server needs to load it."""

    name: str
    version: int
    alias: str
    artifact_uri: str
    sha256: str
    size: int
    model_schema: ModelSchema = Field(alias="schema")
    signature: str | None = None
    """Ed25519 over (name, version, sha256, size), when the registry signs
    (``millrace_common.signing``)."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=(), populate_by_name=True)

    @classmethod
    def from_event(cls, event: ModelPublished) -> AliasTarget:
        return cls.model_validate(event.model_dump(by_alias=True))


class SiteManifest(Contract):
    """``sites/<site-id>/manifest.json``: what a site should run, written by the registry."""

    schema_version: Literal[1] = 1
    site: str
    models: list[AliasTarget]
    updated_at: datetime
    signature: str | None = None
    """Ed25519 over the site, the time and every entry, when the registry signs."""


def schema_files() -> dict[str, bytes]:
    """The committed JSON Schema files: ``<topic>.schema.json`` → content."""
    import json

    return {
        f"{topic}.schema.json": (json.dumps(schema, indent=2, sort_keys=True) + "\n").encode()
        for topic, schema in json_schemas().items()
    }


if __name__ == "__main__":
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "libs/common/schemas")
    target.mkdir(parents=True, exist_ok=True)
    for name, content in schema_files().items():
        (target / name).write_bytes(content)
        print(f"wrote {target / name}")
