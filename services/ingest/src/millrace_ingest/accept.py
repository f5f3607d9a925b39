"""Turning a REST batch into raw records or prediction logs: validation with every bad
field named."""

from __future__ import annotations

import uuid
from typing import Any

from millrace_common.contracts import PredictionLogged
from millrace_common.errors import FieldProblem, InvalidInput
from millrace_common.project import Dataset
from millrace_common.records import RecordInvalid, ValidRecord, validate_record
from pydantic import ValidationError


def accept_batch(dataset: Dataset, records: list[dict[str, Any]]) -> list[ValidRecord]:
    """Validate every record; raise InvalidInput naming each bad field, else all are valid."""
    valid: list[ValidRecord] = []
    rejections: list[FieldProblem] = []
    for i, data in enumerate(records):
        if not isinstance(data, dict):
            rejections.append(FieldProblem(f"records[{i}]", "must be an object"))
            continue
        try:
            valid.append(validate_record(dataset, data))
        except RecordInvalid as exc:
            rejections.extend(
                FieldProblem(f"records[{i}].{e.field}", e.message) for e in exc.errors
            )
    if rejections:
        raise InvalidInput.of(rejections)
    return valid


def accept_predictions(items: list[Any]) -> list[PredictionLogged]:
    """Validate every prediction log; raise InvalidInput naming each bad field
    (``predictions[2].latency_ms``), else all are valid."""
    valid: list[PredictionLogged] = []
    rejections: list[FieldProblem] = []
    for i, data in enumerate(items):
        try:
            valid.append(PredictionLogged.model_validate(data))
        except ValidationError as exc:
            rejections.extend(
                FieldProblem(_path(f"predictions[{i}]", e["loc"]), e["msg"]) for e in exc.errors()
            )
    if rejections:
        raise InvalidInput.of(rejections)
    return valid


def _path(prefix: str, loc: tuple[int | str, ...]) -> str:
    return prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def raw_value(record: ValidRecord) -> dict[str, Any]:
    """The JSON written to ``raw``: what any Kafka client could have produced."""
    return {
        "dataset": record.dataset,
        "entity_id": record.entity_id,
        "ts": record.ts.isoformat(),
        **record.values,
        **record.labels,
        "event_id": record.event_id or str(uuid.uuid4()),
    }
