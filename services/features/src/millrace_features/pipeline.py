"""From a raw message to feature rows: decode, validate, window, compute. No I/O."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
from millrace_common.contracts import FeatureRowComputed
from millrace_common.errors import InvalidInput
from millrace_common.project import Project
from millrace_common.records import RecordInvalid, ValidRecord, validate_record
from millrace_common.windows import add_reading, compute


class Rejected(Exception):
    """The message can never become a feature row; the reason goes to the dlq."""


@dataclass(frozen=True)
class RawMessage:
    value: bytes | None
    topic: str
    partition: int
    offset: int
    trace_id: str | None = None

    @property
    def fallback_event_id(self) -> str:
        """Deterministic from the message's position, so a replay is recognised."""
        return f"{self.topic}-{self.partition}-{self.offset}"


@dataclass(frozen=True)
class ComputedRow:
    row: FeatureRowComputed
    trace_id: str | None


def decode(project: Project, message: RawMessage) -> ValidRecord:
    """The validated record, or Rejected with a reason naming what is wrong."""
    try:
        data = orjson.loads(message.value or b"")
    except orjson.JSONDecodeError as exc:
        raise Rejected(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected("not a JSON object")
    try:
        dataset = project.dataset(str(data.get("dataset")))
    except InvalidInput:
        raise Rejected(f"unknown dataset {data.get('dataset')!r}") from None
    try:
        return validate_record(dataset, data)
    except RecordInvalid as exc:
        raise Rejected(f"invalid record: {exc}") from None


def rows_for(
    project: Project, record: ValidRecord, message: RawMessage, windows: MutableMapping[str, Any]
) -> list[ComputedRow]:
    """Update each feature set's window for the entity and compute its row."""
    event_id = record.event_id or message.fallback_event_id
    at = record.ts.timestamp()
    rows = []
    for feature_set in project.feature_sets_of(record.dataset):
        key = f"{feature_set.name}|{record.entity_id}"
        window = add_reading(
            windows.get(key) or [],
            [at, event_id, record.values],
            keep_seconds=2 * feature_set.max_window_seconds,
        )
        windows[key] = window
        label = record.labels.get(feature_set.label) if feature_set.label else None
        rows.append(
            ComputedRow(
                FeatureRowComputed(
                    event_id=event_id,
                    feature_set=feature_set.name,
                    feature_set_version=feature_set.version,
                    entity_id=record.entity_id,
                    event_time=record.ts,
                    features=compute(feature_set, window, as_of=at),
                    label=None if label is None else float(label),
                ),
                message.trace_id,
            )
        )
    return rows
