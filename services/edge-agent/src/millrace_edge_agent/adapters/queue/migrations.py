"""The queue file's schema, version by version: ``PRAGMA user_version`` says which
migrations a file has had, and opening it runs the missing ones in order, each in its
own transaction with the version it reaches, so a crash mid-way leaves the file at the
last version it completed. Never edit a migration that shipped: add the next one.

Files written before versioning (user_version 0) are adopted by the first two: every
``CREATE`` is ``IF NOT EXISTS``, and the event-time column is added only where such a
file lacks it (a file from before pre-aggregation).

The layout they build::

    records(seq, event_id UNIQUE, dataset, entity_id, body, enqueued_at, event_ts)
    drops(reason, count)               records that will never reach the centre
    closed_windows(dataset, entity_id, closed_until)   pre-aggregation: sent up to here
    heartbeats(seq, body)              reports waiting for the registry
    dead_letters(seq, received_at, source, topic, reason, payload)
    prediction_logs(seq, request_id UNIQUE, body, logged_at)
    prediction_log_drops(reason, count)
    readings(feature_set, entity_id, event_id, at, inputs)   the site's feature windows
    online_rows(feature_set, entity_id, feature_set_version, event_id, event_time,
                features, label, updated_at)                 the latest row per entity
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from millrace_common.errors import InvalidInput


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


def _tables(db: sqlite3.Connection) -> None:
    for statement in (
        "CREATE TABLE IF NOT EXISTS records ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE,"
        " dataset TEXT NOT NULL, entity_id TEXT NOT NULL, body BLOB NOT NULL,"
        " enqueued_at REAL NOT NULL)",
        "CREATE TABLE IF NOT EXISTS drops (reason TEXT PRIMARY KEY, count INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS heartbeats ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL)",
        "CREATE TABLE IF NOT EXISTS dead_letters ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL NOT NULL,"
        " source TEXT NOT NULL, topic TEXT NOT NULL, reason TEXT NOT NULL,"
        " payload BLOB NOT NULL)",
        "CREATE TABLE IF NOT EXISTS prediction_logs ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL UNIQUE,"
        " body BLOB NOT NULL, logged_at REAL NOT NULL)",
        "CREATE TABLE IF NOT EXISTS prediction_log_drops ("
        " reason TEXT PRIMARY KEY, count INTEGER NOT NULL)",
    ):
        db.execute(statement)


def _pre_aggregation(db: sqlite3.Connection) -> None:
    """Each record's event time, indexed per entity, and how far each entity's windows
    were sent."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(records)")}
    if "event_ts" not in columns:  # an unversioned file may have it already
        db.execute("ALTER TABLE records ADD COLUMN event_ts REAL")
    db.execute(
        "CREATE INDEX IF NOT EXISTS records_entity ON records (dataset, entity_id, event_ts)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS closed_windows ("
        " dataset TEXT NOT NULL, entity_id TEXT NOT NULL, closed_until REAL NOT NULL,"
        " PRIMARY KEY (dataset, entity_id))"
    )


def _features(db: sqlite3.Connection) -> None:
    """The feature engine's windows at the site: each reading once per (feature set,
    entity, event id), scanned by entity and event time; and each entity's latest row."""
    db.execute(
        "CREATE TABLE readings ("
        " feature_set TEXT NOT NULL, entity_id TEXT NOT NULL, event_id TEXT NOT NULL,"
        " at REAL NOT NULL, inputs BLOB NOT NULL,"
        " PRIMARY KEY (feature_set, entity_id, event_id)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX readings_time ON readings (feature_set, entity_id, at)")
    db.execute(
        "CREATE TABLE online_rows ("
        " feature_set TEXT NOT NULL, entity_id TEXT NOT NULL,"
        " feature_set_version INTEGER NOT NULL, event_id TEXT NOT NULL,"
        " event_time REAL NOT NULL, features BLOB NOT NULL, label REAL,"
        " updated_at REAL NOT NULL, PRIMARY KEY (feature_set, entity_id)) WITHOUT ROWID"
    )


MIGRATIONS = (
    Migration(1, "tables", _tables),
    Migration(2, "pre_aggregation", _pre_aggregation),
    Migration(3, "features", _features),
)
LATEST = MIGRATIONS[-1].version


def version_of(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, *, path: Path) -> int:
    """Bring the file to ``LATEST``; return the version it had. ``db`` is in autocommit
    mode (``isolation_level=None``), so each migration's transaction is its own."""
    found = version_of(db)
    if found > LATEST:
        raise InvalidInput(
            f"the queue file {path} has schema version {found}, newer than this agent "
            f"knows ({LATEST}): run a newer agent, or move the file away",
            field="cache_dir",
        )
    for migration in MIGRATIONS:
        if migration.version <= found:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            if version_of(db) < migration.version:  # read again, inside the lock
                migration.apply(db)
                db.execute(f"PRAGMA user_version = {migration.version}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return found
