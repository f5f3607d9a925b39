"""The site's feature store in the queue file: the readings the feature engine's windows
start from (``readings``) and the latest row per (feature set, entity)
(``online_rows``).

``load`` and ``write`` run on the connection of a transaction already under way (the
records queue's), so a record, its reading and the rows it made reach the disk together
or not at all. A reading is kept once per (feature set, entity, event id), and only
while it lies within the feature set's keep horizon of its entity's newest reading (the
online row's event time), the span the engine's windows hold: what is pruned is what a
window would have dropped.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from millrace_common.feature_engine import Reading, Row

from millrace_edge_agent.adapters.queue.file import QueueFile, row_count

CHUNK = 500  # entities per statement: well under SQLite's bound on parameters


@dataclass(frozen=True)
class OnlineRow:
    feature_set: str
    entity_id: str
    event_time: float
    features: dict[str, float]


class FeatureTables:
    def __init__(self, file: QueueFile, *, clock: Callable[[], float] = time.time) -> None:
        self.file = file
        self.clock = clock

    def load(
        self, db: sqlite3.Connection, feature_set: str, entities: Collection[str]
    ) -> dict[str, list[Reading]]:
        """Each entity's kept readings, in no particular order (the engine sorts them)."""
        found: dict[str, list[Reading]] = {}
        for chunk in _chunks(list(entities)):
            marks = ",".join("?" * len(chunk))
            for entity, event_id, at, inputs in db.execute(
                "SELECT entity_id, event_id, at, inputs FROM readings"
                f" WHERE feature_set = ? AND entity_id IN ({marks})",
                (feature_set, *chunk),
            ):
                found.setdefault(entity, []).append(Reading(at, event_id, orjson.loads(inputs)))
        return found

    def write(
        self,
        db: sqlite3.Connection,
        rows: Sequence[Row],
        *,
        keep_seconds: dict[str, float],
        latest_fields: dict[str, list[str]] | None = None,
    ) -> None:
        """Keep the rows' readings (a known event id is a no-op), move each entity's
        online row forward in event time, then prune what fell out of its horizon, but
        for each entity's newest reading of each ``latest_fields`` of its feature set
        (``agg: latest`` outlives the window)."""
        if not rows:
            return
        db.executemany(
            "INSERT OR IGNORE INTO readings (feature_set, entity_id, event_id, at, inputs)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (r.feature_set, r.entity_id, r.event_id, r.event_time.timestamp(), _json(r.inputs))
                for r in rows
            ],
        )
        latest = _latest_per_entity(rows)
        now = self.clock()
        db.executemany(
            "INSERT INTO online_rows (feature_set, entity_id, feature_set_version, event_id,"
            " event_time, features, label, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (feature_set, entity_id) DO UPDATE SET"
            " feature_set_version = excluded.feature_set_version,"
            " event_id = excluded.event_id, event_time = excluded.event_time,"
            " features = excluded.features, label = excluded.label,"
            " updated_at = excluded.updated_at"
            " WHERE online_rows.event_time <= excluded.event_time",
            [
                (
                    r.feature_set,
                    r.entity_id,
                    r.feature_set_version,
                    r.event_id,
                    r.event_time.timestamp(),
                    _json(r.features),
                    r.label,
                    now,
                )
                for r in latest
            ],
        )
        prune = (
            "DELETE FROM readings WHERE feature_set = ?1 AND entity_id = ?2 AND at < "
            "(SELECT event_time FROM online_rows WHERE feature_set = ?1 AND entity_id = ?2) - ?3"
        )
        plain = [r for r in latest if not (latest_fields or {}).get(r.feature_set)]
        db.executemany(
            prune, [(r.feature_set, r.entity_id, keep_seconds[r.feature_set]) for r in plain]
        )
        for r in latest:
            fields = (latest_fields or {}).get(r.feature_set)
            if not fields:
                continue
            # the newest reading that has each such field stays, however old
            kept = " AND ".join(
                "event_id IS NOT (SELECT event_id FROM readings WHERE feature_set = ?1 AND"
                f" entity_id = ?2 AND json_extract(inputs, ?{4 + i}) IS NOT NULL"
                " ORDER BY at DESC, event_id DESC LIMIT 1)"
                for i in range(len(fields))
            )
            paths = [f'$."{field}"' for field in fields]
            db.execute(
                f"{prune} AND {kept}",
                (r.feature_set, r.entity_id, keep_seconds[r.feature_set], *paths),
            )

    def online(self, feature_sets: Sequence[str], entities: Iterable[str]) -> list[OnlineRow]:
        """The online rows of ``entities`` in any of ``feature_sets``."""
        if not feature_sets:
            return []
        found: list[OnlineRow] = []
        sets = ",".join("?" * len(feature_sets))
        with self.file.snapshot() as db:
            for chunk in _chunks(list(set(entities))):
                marks = ",".join("?" * len(chunk))
                found.extend(
                    OnlineRow(fs, entity, at, orjson.loads(features))
                    for fs, entity, at, features in db.execute(
                        "SELECT feature_set, entity_id, event_time, features FROM online_rows"
                        f" WHERE feature_set IN ({sets}) AND entity_id IN ({marks})",
                        (*feature_sets, *chunk),
                    )
                )
        return found

    def sizes(self) -> tuple[int, int]:
        """How many entities have an online row, and how many readings are kept."""
        with self.file.read() as db:
            return row_count(db, "online_rows"), row_count(db, "readings")


def _latest_per_entity(rows: Sequence[Row]) -> list[Row]:
    """One row per (feature set, entity), its newest in event time, the later of equals
    (as the centre's online store takes them)."""
    latest: dict[tuple[str, str], Row] = {}
    for row in rows:
        key = (row.feature_set, row.entity_id)
        if key not in latest or latest[key].event_time <= row.event_time:
            latest[key] = row
    return list(latest.values())


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _json(value: Any) -> bytes:
    return orjson.dumps(value)
