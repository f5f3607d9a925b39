"""Dataset snapshots: immutable Parquet in the object store, announced by a train request
through the outbox (the snapshot row and its event commit together)."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from millrace_common.contracts import TRAIN_REQUESTS, SnapshotRef, TrainRequest
from millrace_common.feature_store import offline_rows
from millrace_common.objectstore import ObjectStore, sha256_hex
from millrace_common.outbox import add_event
from millrace_common.project import FeatureSet, ModelSpec
from sqlalchemy.orm import Session, sessionmaker

from millrace_features.retraining import LastSnapshot
from millrace_features.tables import outbox, snapshots


@dataclass(frozen=True)
class Snapshot:
    ref: SnapshotRef
    labelled_rows: int


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


def build_parquet(session: Session, feature_set: FeatureSet) -> tuple[bytes, int, datetime]:
    """All labelled rows of the feature set, in event-time order."""
    rows = session.execute(
        sa.select(
            offline_rows.c.event_id,
            offline_rows.c.entity_id,
            offline_rows.c.event_time,
            offline_rows.c.features,
            offline_rows.c.label,
        )
        .where(offline_rows.c.feature_set == feature_set.name, offline_rows.c.label.is_not(None))
        .order_by(offline_rows.c.event_time, offline_rows.c.event_id)
    ).all()
    times = [_utc(r.event_time) for r in rows]
    columns: dict[str, list[object]] = {
        "event_id": [r.event_id for r in rows],
        "entity_id": [r.entity_id for r in rows],
        "event_time": list(times),
    }
    for name in feature_set.feature_names:
        columns[name] = [float(r.features[name]) for r in rows]
    columns["label"] = [float(r.label) for r in rows]
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue(), len(rows), max(times) if times else datetime.now(UTC)


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
) -> TrainRequest:
    """Write an immutable snapshot, then record it and its train request in one transaction."""
    with factory() as session:
        labelled = labelled_count(session, feature_set.name)
        data, rows, cutoff = build_parquet(session, feature_set)
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
            )
        )
        add_event(
            session,
            outbox,
            topic=TRAIN_REQUESTS,
            key=model.name,
            event_id=request.request_id,
            value=request,
            ce_type="millrace.train.request",
        )
    return request
