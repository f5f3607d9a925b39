"""Turning a REST batch into raw records or prediction logs: validation with every bad
field named."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
from millrace_common.contracts import LabelObserved, PredictionLogged
from millrace_common.errors import FieldProblem, InvalidInput
from millrace_common.project import Dataset, coerce_value, parse_timestamp
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


LABEL_KEYS = frozenset({"request_id", "row", "event_id", "observed_at"})


def accept_labels(dataset: Dataset, items: list[Any]) -> list[LabelObserved]:
    """Labels for ``dataset``: each item names a request id (and a ``row``) or the
    dataset's entity and time fields, and one or more of its label fields; an item
    becomes one label per label field. Raise InvalidInput naming each bad field
    (``labels[2].failure_within_1h``), else all are valid. A label without an
    ``event_id`` gets one from its content, so a resent label is recognised."""
    valid: list[LabelObserved] = []
    rejections: list[FieldProblem] = []
    now = datetime.now(UTC)
    for i, data in enumerate(items):
        where = f"labels[{i}]"
        if not isinstance(data, dict):
            rejections.append(FieldProblem(where, "must be an object"))
            continue
        found, problems = _label_item(dataset, data, where=where, now=now)
        valid.extend(found)
        rejections.extend(problems)
    if rejections:
        raise InvalidInput.of(rejections)
    return valid


def _label_item(
    dataset: Dataset, data: dict[str, Any], *, where: str, now: datetime
) -> tuple[list[LabelObserved], list[FieldProblem]]:
    problems: list[FieldProblem] = []
    known = {*dataset.labels, dataset.entity, dataset.time, *LABEL_KEYS}
    problems.extend(
        FieldProblem(f"{where}.{key}", "unknown field (not a label of the dataset)")
        for key in data
        if key not in known
    )
    values = {}
    for name, kind in dataset.labels.items():
        if data.get(name) is None:
            continue
        try:
            values[name] = coerce_value(data[name], kind)
        except ValueError as exc:
            problems.append(FieldProblem(f"{where}.{name}", str(exc)))
    if not values and not problems:
        names = ", ".join(sorted(dataset.labels)) or "(the dataset has no labels)"
        problems.append(FieldProblem(where, f"names no label: one of {names}"))
    request_id, entity = data.get("request_id"), data.get(dataset.entity)
    ts = None
    if data.get(dataset.time) is not None:
        try:
            ts = parse_timestamp(data[dataset.time])
        except ValueError as exc:
            problems.append(FieldProblem(f"{where}.{dataset.time}", str(exc)))
    if request_id is None and (entity is None or data.get(dataset.time) is None):
        problems.append(
            FieldProblem(
                where, f"name a request_id, or the {dataset.entity} and {dataset.time} it is for"
            )
        )
    observed = now
    if data.get("observed_at") is not None:
        try:
            observed = parse_timestamp(data["observed_at"])
        except ValueError as exc:
            problems.append(FieldProblem(f"{where}.observed_at", str(exc)))
    if problems:
        return [], problems
    found = []
    for name, value in values.items():
        given = data.get("event_id")
        try:
            found.append(
                LabelObserved(
                    event_id=f"{given}:{name}"
                    if given and len(values) > 1
                    else given or _label_id(dataset.name, name, data),
                    dataset=dataset.name,
                    field=name,
                    value=value,
                    request_id=None if request_id is None else str(request_id),
                    row=data.get("row"),
                    entity_id=None if entity is None else str(entity),
                    ts=ts,
                    at=observed,
                )
            )
        except ValidationError as exc:
            problems.extend(FieldProblem(_path(where, e["loc"]), e["msg"]) for e in exc.errors())
    return found, problems


def _label_id(dataset: str, field: str, data: dict[str, Any]) -> str:
    content = orjson.dumps(
        {k: v for k, v in data.items() if k != "observed_at"}, option=orjson.OPT_SORT_KEYS
    )
    digest = hashlib.sha256(dataset.encode() + b"\0" + field.encode() + b"\0" + content)
    return f"label-{digest.hexdigest()[:32]}"
