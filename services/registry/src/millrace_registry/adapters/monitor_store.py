"""The monitor's rows: predictions as served and labels as observed, each written once
(a replayed message is a no-op), read back for a model's window of prediction time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from millrace_registry.adapters.repository import dialect_insert
from millrace_registry.adapters.rows import utc
from millrace_registry.adapters.tables import label_counts, observed_labels, served_predictions
from millrace_registry.live_quality import Served, Truth

CHUNK = 1000
"""Rows per INSERT: a statement's parameters stay well under the drivers' limits."""


def add_predictions(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        statement = dialect_insert(session, served_predictions).values(rows[start : start + CHUNK])
        session.execute(statement.on_conflict_do_nothing())


def add_labels(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Store the labels not seen before; a label whose event id is known counts as a
    duplicate of its dataset. Returns how many were new."""
    fresh: set[str] = set()
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        statement = (
            dialect_insert(session, observed_labels)
            .values(chunk)
            .on_conflict_do_nothing()
            .returning(observed_labels.c.event_id)
        )
        fresh.update(session.execute(statement).scalars())
    repeated: dict[str, int] = {}
    seen: set[str] = set()
    for row in rows:
        if row["event_id"] not in fresh or row["event_id"] in seen:
            repeated[row["dataset"]] = repeated.get(row["dataset"], 0) + 1
        seen.add(row["event_id"])
    for dataset, n in repeated.items():
        statement = dialect_insert(session, label_counts).values(
            dataset=dataset, kind="duplicate", n=n
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["dataset", "kind"], set_={"n": label_counts.c.n + n}
            )
        )
    return len(fresh)


def served(session: Session, *, model: str, since: datetime, until: datetime) -> list[Served]:
    t = served_predictions.c
    query = sa.select(served_predictions).where(t.model == model, t.at >= since, t.at < until)
    return [
        Served(
            version=r.version,
            request_id=r.request_id,
            row=r.row,
            alias=r.alias,
            site=r.site,
            entity_id=r.entity_id,
            at=utc(r.at),
            label=r.label,
            value=r.value,
            probabilities=r.probabilities,
            inputs=r.inputs,
        )
        for r in session.execute(query.order_by(t.at))
    ]


def truths(
    session: Session,
    *,
    dataset: str | None,
    field: str | None,
    since: datetime,
    until: datetime,
    horizon: float,
) -> list[Truth]:
    """Labels that can label a prediction made in [since, until): by request id, observed
    since then; by entity, for event times from ``horizon`` before it."""
    t = observed_labels.c
    by_request = sa.and_(t.request_id.is_not(None), t.at >= since)
    if dataset is not None:
        by_request = sa.and_(by_request, t.dataset == dataset)
    condition: Any = by_request
    if dataset is not None and field is not None:
        by_entity = sa.and_(
            t.request_id.is_(None),
            t.dataset == dataset,
            t.field == field,
            t.ts >= since - timedelta(seconds=horizon),
            t.ts < until,
        )
        condition = sa.or_(by_request, by_entity)
    return [
        Truth(
            event_id=r.event_id,
            value=r.value,
            at=utc(r.at),
            request_id=r.request_id,
            row=r.row,
            entity_id=r.entity_id,
            ts=utc(r.ts) if r.ts is not None else None,
        )
        for r in session.execute(sa.select(observed_labels).where(condition))
    ]


def purge(session: Session, *, before: datetime) -> tuple[int, int]:
    """Delete predictions made and labels observed before ``before``: (predictions, labels)."""
    gone = [
        session.execute(sa.delete(table).where(table.c.at < before))
        for table in (served_predictions, observed_labels)
    ]
    served_gone, labels_gone = (int(getattr(result, "rowcount", 0) or 0) for result in gone)
    return served_gone, labels_gone


def duplicates(session: Session, *, dataset: str | None) -> int:
    """Labels that repeated an event id already stored, since the first."""
    query = sa.select(sa.func.coalesce(sa.func.sum(label_counts.c.n), 0)).where(
        label_counts.c.kind == "duplicate"
    )
    if dataset is not None:
        query = query.where(label_counts.c.dataset == dataset)
    return int(session.execute(query).scalar_one())
