"""Validation of raw records against their dataset, and the bound on a record's size:
shared by ingest, features and the edge agent."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from millrace_common.errors import TooLarge
from millrace_common.project import Dataset, coerce_value, parse_timestamp


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ValidRecord(NamedTuple):
    """A record that passed its dataset's checks (a named tuple: the stream makes one per
    record)."""

    dataset: str
    entity_id: str
    ts: datetime
    values: dict[str, Any]
    labels: dict[str, Any]
    event_id: str | None


class RecordInvalid(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def validate_record(dataset: Dataset, data: dict[str, Any]) -> ValidRecord:
    """Return the typed record or raise RecordInvalid naming every bad field."""
    return _valid(dataset, data) or _checked(dataset, data)


def _valid(dataset: Dataset, data: dict[str, Any]) -> ValidRecord | None:
    """The fast path, for the stream's every record: the typed record when every check
    passes, else None (and ``_checked`` names what is wrong). Exact type tests only,
    so it accepts no more than ``_checked`` does."""
    entity = data.get(dataset.entity)
    ts = data.get(dataset.time)
    if type(entity) is not str or not entity or type(ts) is not str:
        return None  # a timestamp given as a number is valid too: the checked path
    try:
        at = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    values: dict[str, Any] = {}
    for name, types, to_float, optional in dataset.field_checks:
        value: Any = data.get(name)
        if type(value) not in types:
            if optional and value is None:
                continue
            return None
        values[name] = float(value) if to_float else value
    labels: dict[str, Any] = {}
    for name, types, to_float, _optional in dataset.label_checks:
        value = data.get(name)
        if value is None:
            continue
        if type(value) not in types:
            return None
        labels[name] = float(value) if to_float else value
    event_id = data.get("event_id")
    if (event_id is not None and type(event_id) is not str) or not dataset.known_keys.issuperset(
        data
    ):
        return None
    return ValidRecord(dataset.name, entity, at, values, labels, event_id)


def _checked(dataset: Dataset, data: dict[str, Any]) -> ValidRecord:
    """Every check, with every error named."""
    errors: list[FieldError] = []
    entity = data.get(dataset.entity)
    if not isinstance(entity, str) or not entity:
        errors.append(FieldError(dataset.entity, "required, a non-empty string"))
    ts = _timestamp(data, dataset.time, errors)
    values = _typed(data, dataset.fields, errors, required=True, optional=dataset.optional)
    labels = _typed(data, dataset.labels, errors, required=False)
    known = dataset.known_keys
    if not known.issuperset(data):
        errors.extend(FieldError(key, "unknown field") for key in data if key not in known)
    event_id = data.get("event_id")
    if event_id is not None and not isinstance(event_id, str):
        errors.append(FieldError("event_id", "must be a string"))
    if errors:
        raise RecordInvalid(errors)
    assert ts is not None and isinstance(entity, str)
    return ValidRecord(dataset.name, entity, ts, values, labels, event_id)


def _timestamp(data: dict[str, Any], name: str, errors: list[FieldError]) -> datetime | None:
    if name not in data:
        errors.append(FieldError(name, "required"))
        return None
    try:
        return parse_timestamp(data[name])
    except (ValueError, OverflowError, OSError):
        errors.append(FieldError(name, "expected an ISO-8601 timestamp"))
        return None


def _typed(
    data: dict[str, Any],
    spec: dict[str, Any],
    errors: list[FieldError],
    *,
    required: bool,
    optional: Collection[str] = (),
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind in spec.items():
        if data.get(name) is None:
            if required and name not in optional:
                errors.append(FieldError(name, f"required ({kind})"))
            continue
        try:
            out[name] = coerce_value(data[name], kind)
        except ValueError as exc:
            errors.append(FieldError(name, str(exc)))
    return out


def check_sizes(
    values: list[dict[str, Any]], *, max_bytes: int, items: str = "records"
) -> list[bytes]:
    """Each value encoded, or TooLarge naming the largest field of the first one over
    ``max_bytes`` (``records[3].payload``): refused before any is sent or stored. No I/O."""
    encoded = [orjson.dumps(v) for v in values]
    for i, (value, payload) in enumerate(zip(values, encoded, strict=True)):
        if len(payload) > max_bytes:
            largest = max(value, key=lambda name: len(orjson.dumps(value[name])))
            raise TooLarge(
                f"record {i} is {len(payload)} bytes encoded, over the {max_bytes} bytes one "
                f"record may be; its largest field is '{largest}'",
                field=f"{items}[{i}].{largest}",
            )
    return encoded
