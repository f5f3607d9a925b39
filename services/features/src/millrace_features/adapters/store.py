"""The offline and online feature store in the database, written a batch at a time
(idempotent by event id), and the source windows start from (the inputs offline rows
keep).

On Postgres a batch is two statements, each taking its rows as one JSON document
(``json_to_recordset``); elsewhere (SQLite, the dev mode) SQLAlchemy's executemany.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from millrace_common.feature_engine import Reading, Row
from millrace_common.feature_store import offline_rows, online_rows
from millrace_common.project import FeatureSet
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session, sessionmaker

CHUNK = 500  # entities per lookup: well under SQLite's bound on parameters

# a batch travels as one JSON document (orjson builds it at C speed; the server
# unpacks it), whatever its size: two statements a batch, no per-value adaptation
_PG_OFFLINE = sa.text(
    """
    INSERT INTO features.offline_rows (event_id, feature_set, feature_set_version, entity_id,
        event_time, features, label, trace_id, created_at, inputs)
    SELECT r.event_id, r.feature_set, r.feature_set_version, r.entity_id, r.event_time,
        r.features, r.label, r.trace_id, :now, r.inputs
    FROM json_to_recordset(CAST(:rows AS json)) AS r(event_id text, feature_set text,
        feature_set_version int, entity_id text, event_time timestamptz, features json,
        label float8, trace_id text, inputs json)
    ON CONFLICT (feature_set, event_id) DO NOTHING
    """
)
_PG_ONLINE = sa.text(
    """
    INSERT INTO features.online_rows AS o (feature_set, entity_id, feature_set_version,
        event_time, features, updated_at)
    SELECT r.feature_set, r.entity_id, r.feature_set_version, r.event_time, r.features, :now
    FROM json_to_recordset(CAST(:rows AS json)) AS r(feature_set text, entity_id text,
        feature_set_version int, event_time timestamptz, features json)
    ON CONFLICT (feature_set, entity_id) DO UPDATE SET
        feature_set_version = EXCLUDED.feature_set_version,
        event_time = EXCLUDED.event_time,
        features = EXCLUDED.features,
        updated_at = EXCLUDED.updated_at
    WHERE o.event_time <= EXCLUDED.event_time
    """
)


class FeatureStore:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def write(self, rows: Sequence[Row]) -> int:
        """Append offline rows (a replayed event id is a no-op) and move the online rows
        forward in event time, in one transaction. Returns how many offline rows were new."""
        if not rows:
            return 0
        now = datetime.now(UTC)
        latest = _latest_per_entity(rows)
        with self._factory() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                return _write_postgres(session, rows, latest, now)
            return _write_generic(session, rows, latest, now)

    def load(
        self, feature_set: FeatureSet, entities: Collection[str], *, keep_seconds: float
    ) -> dict[str, list[Reading]]:
        """Each entity's recorded readings within ``keep_seconds`` of its newest (the
        ``WindowSource`` of the feature engine); an entity never seen has none."""
        found: dict[str, list[Reading]] = {}
        with self._factory() as session:
            newest = _newest(session, feature_set.name, list(entities))
            for cutoff, group in _by_cutoff(newest, keep_seconds):
                for entity, at, event_id, inputs in session.execute(
                    sa.select(
                        offline_rows.c.entity_id,
                        offline_rows.c.event_time,
                        offline_rows.c.event_id,
                        offline_rows.c.inputs,
                    ).where(
                        offline_rows.c.feature_set == feature_set.name,
                        offline_rows.c.entity_id.in_(group),
                        offline_rows.c.event_time >= cutoff,
                        offline_rows.c.inputs.is_not(None),
                    )
                ):
                    if _aware(at) >= newest[entity] - timedelta(seconds=keep_seconds):
                        reading = Reading(_aware(at).timestamp(), event_id, inputs)
                        found.setdefault(entity, []).append(reading)
                if feature_set.latest_fields:
                    _add_latest(session, feature_set, group, cutoff, keep_seconds, newest, found)
        return found

    def as_of(
        self, feature_set: FeatureSet, wanted: Sequence[tuple[str, datetime]]
    ) -> list[AsOf | None]:
        """For each (entity, time): the newest offline row of the feature set's current
        version whose event time is at or before that time (what was known then), or
        None. Point-in-time correct: a row written for a later event is never used."""
        times: dict[str, list[tuple[float, str, Any, float | None]]] = {}
        entities = sorted({entity for entity, _ in wanted})
        latest = {entity: datetime.min.replace(tzinfo=UTC) for entity in entities}
        for entity, at in wanted:
            latest[entity] = max(latest[entity], _aware(at))
        with self._factory() as session:
            for start in range(0, len(entities), CHUNK):
                group = entities[start : start + CHUNK]
                query = (
                    sa.select(
                        offline_rows.c.entity_id,
                        offline_rows.c.event_time,
                        offline_rows.c.event_id,
                        offline_rows.c.features,
                        offline_rows.c.label,
                    )
                    .where(
                        offline_rows.c.feature_set == feature_set.name,
                        offline_rows.c.feature_set_version == feature_set.version,
                        offline_rows.c.entity_id.in_(group),
                        offline_rows.c.event_time <= max(latest[e] for e in group),
                    )
                    .order_by(offline_rows.c.event_time, offline_rows.c.event_id)
                )
                for entity, at, event_id, features, label in session.execute(query):
                    times.setdefault(entity, []).append(
                        (_aware(at).timestamp(), event_id, features, label)
                    )
        found: list[AsOf | None] = []
        for entity, at in wanted:
            history = times.get(entity, [])
            i = bisect.bisect_right(history, _aware(at).timestamp(), key=lambda r: r[0])
            if i == 0:
                found.append(None)
                continue
            when, event_id, features, label = history[i - 1]
            found.append(AsOf(datetime.fromtimestamp(when, UTC), event_id, features, label))
        return found


def _add_latest(
    session: Session,
    feature_set: FeatureSet,
    group: list[str],
    cutoff: datetime,
    keep_seconds: float,
    newest: dict[str, datetime],
    found: dict[str, list[Reading]],
) -> None:
    """For the fields whose newest value outlives the window (``agg: latest``): each
    entity's newest reading of each before its kept ones, however old."""
    before = max(newest[e] for e in group) - timedelta(seconds=keep_seconds)
    for field in feature_set.latest_fields:
        ranked = (
            sa.select(
                offline_rows.c.entity_id,
                offline_rows.c.event_time,
                offline_rows.c.event_id,
                offline_rows.c.inputs,
                sa.func.row_number()
                .over(
                    partition_by=offline_rows.c.entity_id,
                    order_by=(offline_rows.c.event_time.desc(), offline_rows.c.event_id.desc()),
                )
                .label("n"),
            )
            .where(
                offline_rows.c.feature_set == feature_set.name,
                offline_rows.c.entity_id.in_(group),
                offline_rows.c.event_time < max(before, cutoff),
                offline_rows.c.inputs[field].as_string().is_not(None),
            )
            .subquery()
        )
        query = sa.select(ranked.c.entity_id, ranked.c.event_time, ranked.c.event_id,
                          ranked.c.inputs).where(ranked.c.n == 1)  # fmt: skip
        for entity, at, event_id, inputs in session.execute(query):
            reading = Reading(_aware(at).timestamp(), event_id, {field: inputs[field]})
            _merge(found.setdefault(entity, []), reading)


def _merge(readings: list[Reading], reading: Reading) -> None:
    """Add ``reading``, or its values to the one of the same event already there."""
    for i, known in enumerate(readings):
        if known.event_id == reading.event_id:
            readings[i] = Reading(known.at, known.event_id, reading.values | known.values)
            return
    readings.append(reading)


class AsOf(NamedTuple):
    """A feature row as it was known at a point in time."""

    event_time: datetime
    event_id: str
    features: dict[str, Any]
    label: float | None


def _write_postgres(
    session: Session, rows: Sequence[Row], latest: Sequence[Row], now: datetime
) -> int:
    offline = orjson.dumps(
        [
            {
                "event_id": r.event_id,
                "feature_set": r.feature_set,
                "feature_set_version": r.feature_set_version,
                "entity_id": r.entity_id,
                "event_time": r.event_time,
                "features": r.features,
                "label": r.label,
                "trace_id": r.trace_id,
                "inputs": r.inputs,
            }
            for r in rows
        ]
    )
    online = orjson.dumps(
        [
            {
                "feature_set": r.feature_set,
                "entity_id": r.entity_id,
                "feature_set_version": r.feature_set_version,
                "event_time": r.event_time,
                "features": r.features,
            }
            for r in latest
        ]
    )
    inserted = session.execute(_PG_OFFLINE, {"now": now, "rows": offline.decode()})
    session.execute(_PG_ONLINE, {"now": now, "rows": online.decode()})
    return int(inserted.rowcount)  # type: ignore[attr-defined]


def _write_generic(
    session: Session, rows: Sequence[Row], latest: Sequence[Row], now: datetime
) -> int:
    offline = (
        sqlite.insert(offline_rows)
        .on_conflict_do_nothing(index_elements=["feature_set", "event_id"])
        .returning(offline_rows.c.id)
    )
    inserted = session.execute(offline, [_offline(r, now) for r in rows]).all()
    online = sqlite.insert(online_rows)
    session.execute(
        online.on_conflict_do_update(
            index_elements=["feature_set", "entity_id"],
            set_={
                k: online.excluded[k]
                for k in ("feature_set_version", "event_time", "features", "updated_at")
            },
            where=online_rows.c.event_time <= online.excluded.event_time,
        ),
        [_online(r, now) for r in latest],
    )
    return len(inserted)


def _offline(row: Row, now: datetime) -> dict[str, Any]:
    return {
        "event_id": row.event_id,
        "feature_set": row.feature_set,
        "feature_set_version": row.feature_set_version,
        "entity_id": row.entity_id,
        "event_time": row.event_time,
        "features": row.features,
        "label": row.label,
        "trace_id": row.trace_id,
        "created_at": now,
        "inputs": row.inputs,
    }


def _online(row: Row, now: datetime) -> dict[str, Any]:
    return {
        "feature_set": row.feature_set,
        "entity_id": row.entity_id,
        "feature_set_version": row.feature_set_version,
        "event_time": row.event_time,
        "features": row.features,
        "updated_at": now,
    }


def _latest_per_entity(rows: Sequence[Row]) -> list[Row]:
    """One row per (feature set, entity): its newest in event time (a statement may
    not move one online row twice)."""
    latest: dict[tuple[str, str], Row] = {}
    for row in rows:
        key = (row.feature_set, row.entity_id)
        if key not in latest or latest[key].event_time <= row.event_time:
            latest[key] = row
    return list(latest.values())


def _newest(session: Session, feature_set: str, entities: list[str]) -> dict[str, datetime]:
    """Each entity's newest event time: its online row's."""
    newest: dict[str, datetime] = {}
    for start in range(0, len(entities), CHUNK):
        chunk = entities[start : start + CHUNK]
        for entity, at in session.execute(
            sa.select(online_rows.c.entity_id, online_rows.c.event_time).where(
                online_rows.c.feature_set == feature_set, online_rows.c.entity_id.in_(chunk)
            )
        ):
            newest[entity] = _aware(at)
    return newest


def _by_cutoff(
    newest: dict[str, datetime], keep_seconds: float
) -> list[tuple[datetime, list[str]]]:
    """Entities in groups of at most CHUNK whose newest readings lie within
    ``keep_seconds`` of each other, each with the earliest time its readings need: a
    long-idle entity does not make the others read their whole history."""
    groups: list[tuple[datetime, list[str]]] = []
    keep = timedelta(seconds=keep_seconds)
    for entity, at in sorted(newest.items(), key=lambda item: item[1]):
        if groups and len(groups[-1][1]) < CHUNK and at - keep <= groups[-1][0] + keep:
            groups[-1][1].append(entity)
        else:
            groups.append((at - keep, [entity]))
    return groups


def _aware(at: datetime) -> datetime:
    """SQLite gives back naive datetimes; the store writes UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
