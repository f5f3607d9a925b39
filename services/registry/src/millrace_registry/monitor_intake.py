"""The monitor's intake: ``predictions``, ``labels`` and the labelled rows of ``features``
(a label present on a later record) into the monitor's tables, a batch per poll. A batch
is stored in one transaction, then its offsets are committed: at least once, and every
row is keyed (request id, row, model, version; a label's event id), so a replay writes
nothing twice. A message that is not its topic's contract goes to ``dlq`` with the reason;
while the database is away the batch waits and is retried, never skipped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from millrace_common.contracts import (
    FEATURES,
    LABELS,
    PREDICTIONS,
    FeatureRowComputed,
    LabelObserved,
    PredictionLogged,
)
from millrace_common.messaging import Producer, client_options, send_to_dlq
from millrace_common.project import Project
from pydantic import ValidationError

from millrace_registry.monitoring import Monitoring

log = structlog.get_logger(__name__)
CONSUMER = "registry-monitor"
TOPICS = (PREDICTIONS, LABELS, FEATURES)
"""What the monitor may read; without feature labels it leaves ``features`` alone."""


@dataclass
class Batch:
    predictions: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    poison: list[tuple[ConsumerRecord, str]] = field(default_factory=list)


def decode(records: Iterable[ConsumerRecord], *, project: Project | None) -> Batch:
    """Rows for the monitor's tables from one poll's messages."""
    batch = Batch()
    for record in records:
        try:
            if record.topic == PREDICTIONS:
                batch.predictions.extend(prediction_rows(_parse(record, PredictionLogged)))
            elif record.topic == LABELS:
                batch.labels.append(label_row(_parse(record, LabelObserved)))
            elif record.topic == FEATURES:
                row = _parse(record, FeatureRowComputed)
                found = feature_label(row, project=project)
                if found is not None:
                    batch.labels.append(found)
        except _Refused as exc:
            batch.poison.append((record, str(exc)))
    return batch


class _Refused(Exception):
    pass


def _parse(record: ConsumerRecord, contract: type[Any]) -> Any:
    try:
        return contract.model_validate_json(record.value or b"")
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "value"
        raise _Refused(f"not a {contract.__name__}: {where}: {first['msg']}") from None


def prediction_rows(event: PredictionLogged) -> list[dict[str, Any]]:
    entities = event.entity_ids or []
    inputs = event.inputs or []
    rows = []
    for i, output in enumerate(event.outputs):
        probabilities = output.get("probabilities")
        rows.append(
            {
                "model": event.model,
                "version": event.version,
                "request_id": event.request_id,
                "row": i,
                "alias": event.alias,
                "site": event.site,
                "entity_id": entities[i] if i < len(entities) else None,
                "at": event.at,
                "label": output.get("label"),
                "value": output.get("value"),
                "probabilities": probabilities,
                "inputs": inputs[i] if i < len(inputs) else None,
            }
        )
    return rows


def label_row(label: LabelObserved) -> dict[str, Any]:
    return label.model_dump(exclude={"schema_version"})


def feature_label(row: FeatureRowComputed, *, project: Project | None) -> dict[str, Any] | None:
    """A labelled row of a feature set the project knows, as a label of its dataset."""
    if row.label is None or project is None or row.feature_set not in project.feature_sets:
        return None
    feature_set = project.feature_sets[row.feature_set]
    if feature_set.label is None:
        return None
    return {
        "event_id": f"features:{row.event_id}",
        "dataset": feature_set.dataset,
        "field": feature_set.label,
        "value": row.label,
        "request_id": None,
        "row": None,
        "entity_id": row.entity_id,
        "ts": row.event_time,
        "at": datetime.now(UTC),
    }


@dataclass
class MonitorIntake:
    bootstrap: str
    monitoring: Monitoring
    producer: Producer
    project: Callable[[], Project | None]
    group_id: str = CONSUMER
    feature_labels: bool = True
    """Read ``features`` for labels present on later records (every labelled row is one)."""
    max_records: int = 2000
    retry_cap: float = 10.0

    async def run(self) -> None:
        topics = TOPICS if self.feature_labels else (PREDICTIONS, LABELS)
        consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=self.bootstrap,
            **client_options(),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
        )
        await consumer.start()
        try:
            while True:
                polled = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
                records = [r for batch in polled.values() for r in batch]
                if not records:
                    continue
                await self._take(records)
                await consumer.commit(
                    {tp: batch[-1].offset + 1 for tp, batch in polled.items() if batch}
                )
        finally:
            await consumer.stop()

    async def _take(self, records: list[ConsumerRecord]) -> None:
        batch = decode(records, project=self.project())
        for record, reason in batch.poison:
            await send_to_dlq(self.producer, record, reason=reason, consumer=CONSUMER)
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(
                    self.monitoring.record, predictions=batch.predictions, labels=batch.labels
                )
                return
            except Exception as exc:  # noqa: BLE001 - the database away: wait, never skip
                log.warning("monitor_store_failed_retrying", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(self.retry_cap, delay * 2)
