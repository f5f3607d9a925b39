"""The offline and online feature store in the database (idempotent by event id)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from millrace_common.contracts import FeatureRowComputed
from millrace_common.feature_store import offline_rows, online_rows
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker


def _insert(session: Session, table: sa.Table) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


class FeatureStore:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def write(self, rows: Sequence[tuple[FeatureRowComputed, str | None]]) -> int:
        """Append offline rows (a replayed event id is a no-op) and move the online rows
        forward in event time. Returns how many offline rows were new."""
        if not rows:
            return 0
        now = datetime.now(UTC)
        with self._factory() as session, session.begin():
            inserted = session.execute(
                _insert(session, offline_rows)
                .on_conflict_do_nothing(index_elements=["feature_set", "event_id"])
                .returning(offline_rows.c.id),
                [_offline(row, trace_id, now) for row, trace_id in rows],
            ).all()
            for values in _latest_per_entity([row for row, _ in rows], now):
                self._upsert_online(session, values)
        return len(inserted)

    @staticmethod
    def _upsert_online(session: Session, values: dict[str, Any]) -> None:
        statement = _insert(session, online_rows).values(**values)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["feature_set", "entity_id"],
                set_={
                    k: statement.excluded[k]
                    for k in ("feature_set_version", "event_time", "features", "updated_at")
                },
                where=online_rows.c.event_time <= statement.excluded.event_time,
            )
        )


def _offline(row: FeatureRowComputed, trace_id: str | None, now: datetime) -> dict[str, Any]:
    return {
        "event_id": row.event_id,
        "feature_set": row.feature_set,
        "feature_set_version": row.feature_set_version,
        "entity_id": row.entity_id,
        "event_time": row.event_time,
        "features": row.features,
        "label": row.label,
        "trace_id": trace_id,
        "created_at": now,
    }


def _latest_per_entity(rows: Sequence[FeatureRowComputed], now: datetime) -> list[dict[str, Any]]:
    latest: dict[tuple[str, str], FeatureRowComputed] = {}
    for row in rows:
        key = (row.feature_set, row.entity_id)
        if key not in latest or latest[key].event_time <= row.event_time:
            latest[key] = row
    return [
        {
            "feature_set": r.feature_set,
            "entity_id": r.entity_id,
            "feature_set_version": r.feature_set_version,
            "event_time": r.event_time,
            "features": r.features,
            "updated_at": now,
        }
        for r in latest.values()
    ]
