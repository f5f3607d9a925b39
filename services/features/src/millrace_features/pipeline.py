"""From a raw message to an event of the feature engine: decode and validate. No I/O."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from millrace_common.errors import NotFound
from millrace_common.feature_engine import Event
from millrace_common.project import Project
from millrace_common.records import RecordInvalid, ValidRecord, validate_record


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
    except NotFound:
        raise Rejected(f"unknown dataset {data.get('dataset')!r}") from None
    try:
        return validate_record(dataset, data)
    except RecordInvalid as exc:
        raise Rejected(f"invalid record: {exc}") from None


def event_of(project: Project, message: RawMessage) -> Event:
    """The message as an event of the feature engine, or Rejected with the reason."""
    record = decode(project, message)
    return Event(record, record.event_id or message.fallback_event_id, message.trace_id)
