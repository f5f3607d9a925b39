"""Turning a REST batch into raw records: validation with every bad field named."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from millrace_common.errors import InvalidInput
from millrace_common.project import Dataset
from millrace_common.records import RecordInvalid, ValidRecord, validate_record


@dataclass(frozen=True)
class Rejection:
    field: str
    message: str


class BatchInvalid(InvalidInput):
    """A batch with invalid records: nothing of it is accepted."""

    def __init__(self, rejections: list[Rejection]) -> None:
        first = rejections[0]
        super().__init__(f"{first.field}: {first.message}", field=first.field)
        self.rejections = rejections


def accept_batch(dataset: Dataset, records: list[dict[str, Any]]) -> list[ValidRecord]:
    """Validate every record; raise BatchInvalid naming each bad field, else all are valid."""
    valid: list[ValidRecord] = []
    rejections: list[Rejection] = []
    for i, data in enumerate(records):
        if not isinstance(data, dict):
            rejections.append(Rejection(f"records[{i}]", "must be an object"))
            continue
        try:
            valid.append(validate_record(dataset, data))
        except RecordInvalid as exc:
            rejections.extend(Rejection(f"records[{i}].{e.field}", e.message) for e in exc.errors)
    if rejections:
        raise BatchInvalid(rejections)
    return valid


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
