"""Records from local producers, over REST or MQTT, into the disk queue: validated like
ingest does, given event ids, stored all or none under the queue's full-queue policy.

With the project folder at hand the agent validates each record against its dataset
(the same ``validate_record`` as ingest, so a 422 names the same field); without it,
it checks only what forwarding needs: an object with a non-empty ``entity_id``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from millrace_common.errors import FieldProblem, InvalidInput
from millrace_common.project import Project
from millrace_common.records import RecordInvalid, validate_record

from millrace_edge_agent.adapters.queue.records import NewRecord, QueueFull, RecordQueue
from millrace_edge_agent.metrics import DROPPED, QUEUE_DEPTH, QUEUED

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Accepted:
    event_ids: list[str]
    queue_depth: int


@dataclass
class RecordIntake:
    queue: RecordQueue
    project: Project | None
    max_records: int = 5000
    """Per REST request."""
    on_stored: Callable[[], None] | None = None
    """Called once records are on disk (the forwarder's wake-up)."""

    async def accept(self, *, dataset: str, records: list[Any]) -> Accepted:
        """Validate and store ``records`` durably; return their event ids.

        Raises InvalidInput naming every bad field (none is queued), or QueueFull when
        they do not fit under ``reject-new``."""
        if len(records) > self.max_records:
            raise InvalidInput(f"at most {self.max_records} records per request", field="records")
        prepared = prepare(dataset=dataset, records=records, project=self.project)
        depth = await self.store(prepared)
        log.info("records_queued", dataset=dataset, count=len(prepared), queue_depth=depth)
        return Accepted(event_ids=[r.event_id for r in prepared], queue_depth=depth)

    async def store(self, prepared: list[NewRecord], *, count_refused: bool = True) -> int:
        """Store validated records durably, all or none; return the queue's depth.

        Raises QueueFull when full under ``reject-new`` (counted as a drop unless
        ``count_refused`` is false: the caller will offer them again)."""
        try:
            dropped = await asyncio.to_thread(
                self.queue.append, prepared, count_refused=count_refused
            )
        except QueueFull:
            if count_refused:
                DROPPED.labels("queue_full_rejected").inc(len(prepared))
            raise
        for reason, count in dropped.items():
            DROPPED.labels(reason).inc(count)
            log.warning("records_dropped", reason=reason, count=count)
        QUEUED.inc(len(prepared))
        depth = self.queue.depth()
        QUEUE_DEPTH.set(depth)
        if self.on_stored is not None:
            self.on_stored()
        return depth


def prepare(*, dataset: str, records: list[Any], project: Project | None) -> list[NewRecord]:
    """Validate ``records`` and give each an event id (a provided one is kept); no I/O.

    Raises InvalidInput with every field at fault (``records[3].temperature``)."""
    entity_field = project.dataset(dataset).entity if project is not None else "entity_id"
    problems: list[FieldProblem] = []
    prepared: list[NewRecord] = []
    for i, data in enumerate(records):
        if not isinstance(data, dict):
            problems.append(FieldProblem(f"records[{i}]", "must be an object"))
            continue
        found, event_ts = _check(project, dataset, data)
        problems.extend(FieldProblem(f"records[{i}].{p.field}", p.message) for p in found)
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
    if problems:
        raise InvalidInput.of(problems)
    return prepared


def _check(
    project: Project | None, dataset: str, data: dict[str, Any]
) -> tuple[list[FieldProblem], float | None]:
    """The record's field problems, and its event time when its dataset is known."""
    if project is not None:
        try:
            valid = validate_record(project.dataset(dataset), data)
        except RecordInvalid as exc:
            return [FieldProblem(e.field, e.message) for e in exc.errors], None
        return [], valid.ts.timestamp()
    return _minimal_problems(data), None


def _minimal_problems(data: dict[str, Any]) -> list[FieldProblem]:
    found = []
    if not isinstance(data.get("entity_id"), str) or not data["entity_id"]:
        found.append(FieldProblem("entity_id", "required, a non-empty string"))
    if data.get("event_id") is not None and not isinstance(data["event_id"], str):
        found.append(FieldProblem("event_id", "must be a string"))
    return found
