"""Turning a REST batch into raw records or prediction logs: validation with every bad
field named."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
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


def raw_values(
    dataset: Dataset, records: list[ValidRecord], *, idempotency_key: str | None
) -> list[dict[str, Any]]:
    """The JSON written to ``raw`` for a batch: what any Kafka client could have produced,
    each record with its own ``event_id`` or a deterministic one, so a retried post
    makes no new events (features keeps one row per event id). No I/O."""
    return [
        raw_value(
            dataset, record, event_id=record.event_id or rest_event_id(record, idempotency_key, i)
        )
        for i, record in enumerate(records)
    ]


def raw_value(dataset: Dataset, record: ValidRecord, *, event_id: str) -> dict[str, Any]:
    """The record under the dataset's own names for its entity and time fields
    (``customer_id``, ``as_of``), as features validates it."""
    return {
        "dataset": record.dataset,
        dataset.entity: record.entity_id,
        dataset.time: record.ts.isoformat(),
        **record.values,
        **record.labels,
        "event_id": event_id,
    }


def rest_event_id(record: ValidRecord, idempotency_key: str | None, index: int) -> str:
    """From the post's ``Idempotency-Key`` and the record's place in the batch when the
    client sent one; else from the record's content (dataset, entity, time, fields), so
    the same record posted twice is the same event."""
    if idempotency_key:
        return f"rest-{_digest(record.dataset, idempotency_key, str(index))}"
    content = {
        "dataset": record.dataset,
        "entity_id": record.entity_id,
        "ts": record.ts.isoformat(),
        "values": record.values,
        "labels": record.labels,
    }
    return f"rest-{_digest(orjson.dumps(content, option=orjson.OPT_SORT_KEYS).decode())}"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
