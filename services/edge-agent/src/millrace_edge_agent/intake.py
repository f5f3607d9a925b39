"""Records from local producers, over REST or MQTT, into the disk queue: validated like
ingest does, given event ids, stored all or none under the queue's full-queue policy.

With the project folder at hand the agent validates each record against its dataset
(the same ``validate_record`` as ingest, so a 422 names the same field); without it,
it checks only what forwarding needs: an object with a non-empty ``entity_id``.

A record over ``max_record_bytes`` once encoded is a 413 naming its largest field, as
ingest answers (the same ``check_sizes``), so the site queues nothing the centre would
refuse for its size.

With the project, the records stored also go through the feature engine
(``site_features``), in the transaction that queues them: 202 means the records, their
readings and the feature rows they made are on disk together.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from millrace_common.errors import FieldProblem, InvalidInput
from millrace_common.feature_engine import Row
from millrace_common.project import Project
from millrace_common.records import RecordInvalid, ValidRecord, check_sizes, validate_record

from millrace_edge_agent.adapters.queue.records import NewRecord, QueueFull, RecordQueue
from millrace_edge_agent.metrics import DROPPED, QUEUE_DEPTH, QUEUED
from millrace_edge_agent.site_features import SiteFeatures

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Accepted:
    event_ids: list[str]
    queue_depth: int
    rows: list[Row] = field(default_factory=list)
    """The feature rows the records made at the site, in record order."""


@dataclass
class RecordIntake:
    queue: RecordQueue
    project: Project | None
    max_records: int = 5000
    """Per REST request."""
    max_record_bytes: int | None = None
    """The largest record, JSON-encoded (None: no bound)."""
    on_stored: Callable[[], None] | None = None
    """Called once records are on disk (the forwarder's wake-up)."""
    features: SiteFeatures | None = None
    """The feature engine the stored records go through (with the project)."""

    async def accept(self, *, dataset: str, records: list[Any]) -> Accepted:
        """Validate and store ``records`` durably; return their event ids.

        Raises InvalidInput naming every bad field (none is queued), TooLarge naming the
        largest field of a record over ``max_record_bytes``, or QueueFull when they do
        not fit under ``reject-new``."""
        if len(records) > self.max_records:
            raise InvalidInput(f"at most {self.max_records} records per request", field="records")
        prepared = prepare(
            dataset=dataset,
            records=records,
            project=self.project,
            max_record_bytes=self.max_record_bytes,
        )
        rows: list[Row] = []
        depth = await self.store(prepared, rows=rows)
        log.info(
            "records_queued",
            dataset=dataset,
            count=len(prepared),
            rows=len(rows),
            queue_depth=depth,
        )
        return Accepted(event_ids=[r.event_id for r in prepared], queue_depth=depth, rows=rows)

    async def store(
        self,
        prepared: list[NewRecord],
        *,
        count_refused: bool = True,
        rows: list[Row] | None = None,
    ) -> int:
        """Store validated records durably, all or none, with the feature rows they
        make (added to ``rows`` when given); return the queue's depth.

        Raises QueueFull when full under ``reject-new`` (counted as a drop unless
        ``count_refused`` is false: the caller will offer them again)."""
        made: list[Row] = [] if rows is None else rows
        try:
            dropped = await asyncio.to_thread(self._append, prepared, count_refused, made)
        except QueueFull:
            if count_refused:
                DROPPED.labels("queue_full_rejected").inc(len(prepared))
            raise
        for reason, count in dropped.items():
            DROPPED.labels(reason).inc(count)
            log.warning("records_dropped", reason=reason, count=count)
        QUEUED.inc(len(prepared))
        if self.features is not None:
            self.features.counted(made)
        depth = self.queue.depth()
        QUEUE_DEPTH.set(depth)
        if self.on_stored is not None:
            self.on_stored()
        return depth

    def _append(
        self, prepared: list[NewRecord], count_refused: bool, rows: list[Row]
    ) -> dict[str, int]:
        features = self.features
        if features is None:
            return self.queue.append(prepared, count_refused=count_refused)

        def compute(db: sqlite3.Connection, stored: Sequence[NewRecord]) -> None:
            rows.extend(features.take(db, stored))

        try:
            return self.queue.append(prepared, count_refused=count_refused, within=compute)
        except QueueFull:
            raise  # refused before the engine saw a record
        except BaseException:
            features.forget()  # the windows may have moved past what the file holds
            rows.clear()
            raise


def prepare(
    *,
    dataset: str,
    records: list[Any],
    project: Project | None,
    max_record_bytes: int | None = None,
) -> list[NewRecord]:
    """Validate ``records`` and give each an event id (a provided one is kept); no I/O.

    Raises InvalidInput with every field at fault (``records[3].temperature``), then
    TooLarge naming the largest field of the first record over ``max_record_bytes``."""
    entity_field = project.dataset(dataset).entity if project is not None else "entity_id"
    problems: list[FieldProblem] = []
    prepared: list[NewRecord] = []
    for i, data in enumerate(records):
        if not isinstance(data, dict):
            problems.append(FieldProblem(f"records[{i}]", "must be an object"))
            continue
        found, valid = _check(project, dataset, data)
        problems.extend(FieldProblem(f"records[{i}].{p.field}", p.message) for p in found)
        if not found:
            event_id = data.get("event_id") or str(uuid.uuid4())
            prepared.append(
                NewRecord(
                    event_id=event_id,
                    dataset=dataset,
                    entity_id=data[entity_field],
                    record={**data, "event_id": event_id},
                    event_ts=valid.ts.timestamp() if valid is not None else None,
                    valid=valid,
                )
            )
    if problems:
        raise InvalidInput.of(problems)
    if max_record_bytes is None:
        return prepared
    bodies = check_sizes([r.record for r in prepared], max_bytes=max_record_bytes)
    return [replace(r, body=body) for r, body in zip(prepared, bodies, strict=True)]


def _check(
    project: Project | None, dataset: str, data: dict[str, Any]
) -> tuple[list[FieldProblem], ValidRecord | None]:
    """The record's field problems, and the validated record when its dataset is known."""
    if project is not None:
        try:
            valid = validate_record(project.dataset(dataset), data)
        except RecordInvalid as exc:
            return [FieldProblem(e.field, e.message) for e in exc.errors], None
        return [], valid
    return _minimal_problems(data), None


def _minimal_problems(data: dict[str, Any]) -> list[FieldProblem]:
    found = []
    if not isinstance(data.get("entity_id"), str) or not data["entity_id"]:
        found.append(FieldProblem("entity_id", "required, a non-empty string"))
    if data.get("event_id") is not None and not isinstance(data["event_id"], str):
        found.append(FieldProblem("event_id", "must be a string"))
    return found
