"""Records from local producers: validated like ingest does, given event ids, queued.

With the project folder at hand the agent validates each record against its dataset
(the same ``validate_record`` as ingest, so a 422 names the same field); without it,
it checks only what forwarding needs: an object with a non-empty ``entity_id``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import structlog
from millrace_common.errors import InvalidInput
from millrace_common.project import Project, load_project
from millrace_common.records import RecordInvalid, validate_record

from millrace_edge_agent.adapters.queue.records import NewRecord

log = structlog.get_logger(__name__)


class RecordsInvalid(InvalidInput):
    """Some records of a batch are invalid: none of it is queued."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__(f"{errors[0][0]}: {errors[0][1]}", field=errors[0][0])
        self.errors = errors


def open_project(path: str) -> Project | None:
    """The project, when the site has its folder; ``None`` means "validate the minimum"."""
    if not path or not (Path(path) / "millrace.yaml").is_file():
        return None
    return load_project(path)


def prepare(*, dataset: str, records: list[Any], project: Project | None) -> list[NewRecord]:
    """Validate ``records`` and give each an event id (a provided one is kept)."""
    entity_field = project.dataset(dataset).entity if project is not None else "entity_id"
    errors: list[tuple[str, str]] = []
    prepared: list[NewRecord] = []
    for i, data in enumerate(records):
        if not isinstance(data, dict):
            errors.append((f"records[{i}]", "must be an object"))
            continue
        found, event_ts = _check(project, dataset, data)
        errors.extend((f"records[{i}].{name}", message) for name, message in found)
        if not found:
            event_id = data.get("event_id") or str(uuid.uuid4())
            prepared.append(
                NewRecord(
                    event_id=event_id,
                    dataset=dataset,
                    entity_id=data[entity_field],
                    record={**data, "event_id": event_id},
                    event_ts=event_ts,
                )
            )
    if errors:
        raise RecordsInvalid(errors)
    return prepared


def _check(
    project: Project | None, dataset: str, data: dict[str, Any]
) -> tuple[list[tuple[str, str]], float | None]:
    """The record's field errors, and its event time when its dataset is known."""
    if project is not None:
        try:
            valid = validate_record(project.dataset(dataset), data)
        except RecordInvalid as exc:
            return [(e.field, e.message) for e in exc.errors], None
        return [], valid.ts.timestamp()
    return _minimal_errors(data), None


def _minimal_errors(data: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    if not isinstance(data.get("entity_id"), str) or not data["entity_id"]:
        found.append(("entity_id", "required, a non-empty string"))
    if data.get("event_id") is not None and not isinstance(data["event_id"], str):
        found.append(("event_id", "must be a string"))
    return found
