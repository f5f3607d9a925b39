"""Dataset snapshots: immutable Parquet in the object store, announced by a train request
through the outbox (the snapshot row and its event commit together)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from millrace_common.contracts import EVENT_TYPES, TRAIN_REQUESTS, SnapshotRef, TrainRequest
from millrace_common.distribution import reference_of
from millrace_common.feature_store import offline_rows
from millrace_common.objectstore import ObjectStore, sha256_hex
from millrace_common.outbox import add_event
from millrace_common.project import FeatureSet, ModelSpec
from sqlalchemy.orm import Session, sessionmaker

from millrace_features.adapters.tables import outbox, snapshots
from millrace_features.retrain_policy import LastSnapshot


@dataclass(frozen=True)
class Snapshot:
    ref: SnapshotRef
    labelled_rows: int


@dataclass(frozen=True)
class Reference:
    """The newest snapshot of a model as drift sees it."""

    snapshot_id: str
    rows: int
    labelled_rows: int
    created_at: datetime
    reason: str | None
    distribution: dict[str, Any] | None


@dataclass(frozen=True)
class Window:
    """The feature rows of the newest stretch of event time of a feature set."""

    rows: list[dict[str, Any]]
    start: datetime | None
    end: datetime | None


def labelled_count(session: Session, feature_set: str) -> int:
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(offline_rows)
            .where(offline_rows.c.feature_set == feature_set, offline_rows.c.label.is_not(None))
        )
        or 0
    )


def last_snapshot(session: Session, model: str) -> LastSnapshot | None:
    """How many labelled rows the model's newest snapshot held, and when it was cut."""
    row = session.execute(
        sa.select(
            sa.func.max(snapshots.c.labelled_rows).label("labelled_rows"),
            sa.func.max(snapshots.c.created_at).label("created_at"),
        ).where(snapshots.c.model == model)
    ).one()
    if row.created_at is None:
        return None
    return LastSnapshot(labelled_rows=int(row.labelled_rows), created_at=_utc(row.created_at))


def latest_reference(session: Session, model: str) -> Reference | None:
    row = session.execute(
        sa.select(snapshots)
        .where(snapshots.c.model == model)
        .order_by(snapshots.c.created_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return Reference(
        snapshot_id=row.snapshot_id,
        rows=row.rows,
        labelled_rows=row.labelled_rows,
        created_at=_utc(row.created_at),
        reason=row.reason,
        distribution=row.reference,
    )


def recent_window(session: Session, feature_set: str, *, seconds: int, limit: int) -> Window:
    """The rows (labelled or not) whose event time is within ``seconds`` of the feature
    set's newest row, the newest ``limit`` of them: the window follows the data's own
    clock, so a replay or a backfill is measured as it was."""
    end = session.scalar(
        sa.select(sa.func.max(offline_rows.c.event_time)).where(
            offline_rows.c.feature_set == feature_set
        )
    )
    if end is None:
        return Window(rows=[], start=None, end=None)
    start = _utc(end) - timedelta(seconds=seconds)
    rows = session.scalars(
        sa.select(offline_rows.c.features)
        .where(offline_rows.c.feature_set == feature_set, offline_rows.c.event_time > start)
        .order_by(offline_rows.c.event_time.desc())
        .limit(limit)
    ).all()
    return Window(rows=list(rows), start=start, end=_utc(end))


def build_parquet(
    session: Session, feature_set: FeatureSet, *, lookback: float | None = None
) -> tuple[bytes, int, datetime, dict[str, Any]]:
    """The labelled rows of the feature set's current version (those of the last
    ``lookback`` seconds of event time up to the newest, when given), in event-time order,
    and each feature's reference distribution over them."""
    labelled = sa.and_(
        offline_rows.c.feature_set == feature_set.name,
        # the version the spec names now: an older one's rows hold other features
        offline_rows.c.feature_set_version == feature_set.version,
        offline_rows.c.label.is_not(None),
    )
    if lookback is not None:
        newest = session.execute(sa.select(sa.func.max(offline_rows.c.event_time)).where(labelled))
        latest = newest.scalar_one_or_none()
        if latest is not None:
            labelled = sa.and_(
                labelled, offline_rows.c.event_time >= latest - timedelta(seconds=lookback)
            )
    rows = session.execute(
        sa.select(
            offline_rows.c.event_id,
            offline_rows.c.entity_id,
            offline_rows.c.event_time,
            offline_rows.c.features,
            offline_rows.c.label,
        )
        .where(labelled)
        .order_by(offline_rows.c.event_time, offline_rows.c.event_id)
    ).all()
    times = [_utc(r.event_time) for r in rows]
    columns: dict[str, Sequence[object]] = {
        "event_id": [r.event_id for r in rows],
        "entity_id": [r.entity_id for r in rows],
        "event_time": list(times),
    }
    # a missing value (an empty window's mean, a first event's time since the last one)
    # stays missing: null in Parquet, imputed by the model the trainer fits
    values = {
        name: [_number(r.features.get(name)) for r in rows] for name in feature_set.feature_names
    }
    columns.update({name: pa.array(column, type=pa.float64()) for name, column in values.items()})
    columns["label"] = [float(r.label) for r in rows]
    reference = reference_of({name: [v for v in c if v is not None] for name, c in values.items()})
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    cutoff = max(times) if times else datetime.now(UTC)
    return buffer.getvalue(), len(rows), cutoff, reference


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def snapshot_and_request(
    *,
    factory: sessionmaker[Session],
    store: ObjectStore,
    feature_set: FeatureSet,
    model: ModelSpec,
    reason: str,
    requested_by: str = "features",
    upload_id: str | None = None,
) -> TrainRequest:
    """Write an immutable snapshot, then record it and its train request in one transaction."""
    with factory() as session:
        labelled = labelled_count(session, feature_set.name)
        data, rows, cutoff, reference = build_parquet(
            session, feature_set, lookback=model.retrain.lookback_seconds
        )
    snapshot_id = f"{cutoff:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    key = f"datasets/{feature_set.name}/{snapshot_id}.parquet"
    store.put(key, data)
    ref = SnapshotRef(
        uri=store.uri(key),
        sha256=sha256_hex(data),
        rows=rows,
        cutoff=cutoff,
        feature_set=feature_set.name,
        feature_set_version=feature_set.version,
    )
    request = TrainRequest(
        request_id=str(uuid.uuid4()),
        model=model.name,
        snapshot=ref,
        reason=reason,
        requested_by=requested_by,
        requested_at=datetime.now(UTC),
        upload_id=upload_id,
    )
    with factory() as session, session.begin():
        session.execute(
            snapshots.insert().values(
                snapshot_id=snapshot_id,
                model=model.name,
                feature_set=feature_set.name,
                uri=ref.uri,
                sha256=ref.sha256,
                rows=rows,
                labelled_rows=labelled,
                cutoff=cutoff,
                request_id=request.request_id,
                created_at=datetime.now(UTC),
                reference=reference,
                reason=reason,
            )
        )
        add_event(
            session,
            outbox,
            topic=TRAIN_REQUESTS,
            key=model.name,
            event_id=request.request_id,
            value=request,
            ce_type=EVENT_TYPES[TRAIN_REQUESTS],
        )
    return request
