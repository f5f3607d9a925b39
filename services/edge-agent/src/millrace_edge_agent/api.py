"""The agent's own routes (the predict routes are serving's, ``predict_api``): local
records into the disk queue (and through the feature engine), the dead letters, the
site's status."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Query
from millrace_common.contracts import FeatureRowComputed
from millrace_common.feature_engine import Row
from millrace_common.http import errors

from millrace_edge_agent.deps import DeadLettersDep, IntakeDep, RuntimeDep
from millrace_edge_agent.schemas import AgentStatus, DeadLetters, RecordBatch, RecordsAccepted
from millrace_edge_agent.status import dead_letter_out, describe

router = APIRouter(prefix="/v1", tags=["edge-agent"])


@router.post(
    "/datasets/{name}/records",
    status_code=202,
    response_model=RecordsAccepted,
    responses=errors(404, 413, 422, 507),
)
async def post_records(
    name: str,
    intake: IntakeDep,
    batch: Annotated[RecordBatch, Body()],
    rows: Annotated[
        bool, Query(description="answer the feature rows the records made at the site")
    ] = False,
) -> RecordsAccepted:
    """All of a batch or none of it: 202 once every record is on the site's disk (with
    the project folder, with the feature rows it made); 422 names each bad field
    (``records[3].temperature``); 413 a body over ``max_body_bytes``, or a record over
    ``max_record_bytes`` naming its largest field; 507 when the queue is full and its
    policy is reject-new (the message says how many records were refused)."""
    queued = await intake.accept(dataset=name, records=batch.records)
    return RecordsAccepted(
        accepted=len(queued.event_ids),
        event_ids=queued.event_ids,
        queue_depth=queued.queue_depth,
        rows=[_row_out(row) for row in queued.rows] if rows else None,
    )


def _row_out(row: Row) -> FeatureRowComputed:
    return FeatureRowComputed(
        event_id=row.event_id,
        feature_set=row.feature_set,
        feature_set_version=row.feature_set_version,
        entity_id=row.entity_id,
        event_time=row.event_time,
        features=row.features,
        label=row.label,
    )


@router.get("/dead-letters", response_model=DeadLetters, responses=errors(422))
async def dead_letters(
    letters: DeadLettersDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> DeadLetters:
    """MQTT messages no record could be taken from, and records the centre refused for
    good, newest first, with the reason."""
    newest = await asyncio.to_thread(letters.newest, limit)
    return DeadLetters(dead_letters=[dead_letter_out(letter) for letter in newest])


@router.get("/status", response_model=AgentStatus)
async def status(runtime: RuntimeDep) -> AgentStatus:
    """The site's models, last sync, queue, uplink and prediction logs."""
    return await asyncio.to_thread(describe, runtime)  # reads the queue file
