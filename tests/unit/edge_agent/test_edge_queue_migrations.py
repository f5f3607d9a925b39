"""The queue file's schema is versioned (``PRAGMA user_version``): a file an older agent
wrote is upgraded in place when a newer one opens it, and every row it held is still
there, in order, with its drop counts; a file from a newer agent is refused by name."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from millrace_common.errors import InvalidInput
from millrace_edge_agent.adapters.queue import Queues
from millrace_edge_agent.adapters.queue.migrations import LATEST
from millrace_edge_agent.adapters.queue.records import NewRecord

# the layout the agent wrote before its schema had a version (user_version 0)
UNVERSIONED = """
CREATE TABLE records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    dataset TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    body BLOB NOT NULL,
    enqueued_at REAL NOT NULL,
    event_ts REAL
);
CREATE TABLE drops (reason TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE heartbeats (seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL);
CREATE TABLE dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    source TEXT NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE prediction_logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    logged_at REAL NOT NULL
);
CREATE TABLE prediction_log_drops (reason TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE closed_windows (
    dataset TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    closed_until REAL NOT NULL,
    PRIMARY KEY (dataset, entity_id)
);
CREATE INDEX records_entity ON records (dataset, entity_id, event_ts);
"""
# and before pre-aggregation: records had no event time, there were no closed windows
BEFORE_PRE_AGGREGATION = UNVERSIONED.replace(",\n    event_ts REAL\n", "\n").split(
    "CREATE TABLE closed_windows"
)[0]
NOW = 1_800_000_000.0


def record(entity: str, n: int) -> dict[str, object]:
    return {"entity_id": entity, "ts": f"2027-01-15T08:00:{n:02d}Z", "event_id": f"{entity}-{n}"}


def old_file(path: Path, layout: str) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(layout)
    with_ts = "event_ts" in layout
    for n, entity in enumerate(["m-1", "m-2", "m-1"]):
        columns, values = (
            ("event_id, dataset, entity_id, body, enqueued_at", "?, ?, ?, ?, ?")
            if not with_ts
            else ("event_id, dataset, entity_id, body, enqueued_at, event_ts", "?, ?, ?, ?, ?, ?")
        )
        row = [f"{entity}-{n}", "machines", entity, orjson.dumps(record(entity, n)), NOW]
        db.execute(
            f"INSERT INTO records ({columns}) VALUES ({values})", row + ([NOW] if with_ts else [])
        )
    db.execute("INSERT INTO drops VALUES ('expired', 4)")
    db.execute("INSERT INTO heartbeats (body) VALUES (?)", (orjson.dumps({"site": "s"}),))
    db.execute(
        "INSERT INTO dead_letters (received_at, source, topic, reason, payload)"
        " VALUES (?, 'mqtt', 't/machines', 'payload is not JSON', x'7b6e6f')",
        (NOW,),
    )
    db.execute(
        "INSERT INTO prediction_logs (request_id, body, logged_at) VALUES ('r-1', ?, ?)",
        (b'{"request_id": "r-1"}', NOW),
    )
    db.execute("INSERT INTO prediction_log_drops VALUES ('buffer_full', 2)")
    db.commit()
    db.close()


def version_of(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def open_queues(path: Path) -> Queues:
    return Queues.open(
        path, max_rows=100, max_age=365 * 86400.0, policy="reject-new", clock=lambda: NOW
    )


@pytest.mark.parametrize("layout", [UNVERSIONED, BEFORE_PRE_AGGREGATION])
def test_a_file_in_an_older_layout_keeps_every_row_after_the_upgrade(
    tmp_path: Path, layout: str
) -> None:
    path = tmp_path / "queue.sqlite3"
    old_file(path, layout)
    assert version_of(path) == 0
    queues = open_queues(path)
    assert version_of(path) == LATEST
    assert [q.event_id for q in queues.records.peek(10)] == ["m-1-0", "m-2-1", "m-1-2"]
    assert queues.records.peek(10)[1].record == record("m-2", 1)
    assert queues.records.drops() == {"expired": 4}
    assert queues.heartbeats.peek(10) == [(1, {"site": "s"})]
    [letter] = queues.dead_letters.newest(10)
    assert (letter.reason, letter.payload) == ("payload is not JSON", b"{no")
    assert queues.prediction_logs.peek(10) == [(1, b'{"request_id": "r-1"}')]
    assert queues.prediction_logs.drops() == {"buffer_full": 2}
    assert queues.features.sizes() == (0, 0)  # the site's windows start empty
    # and the upgraded file takes what the new code writes: event times, windows
    queues.records.append(
        [NewRecord("m-3-0", "machines", "m-3", record("m-3", 0), event_ts=NOW - 30)]
    )
    windows = sorted((w.entity_id, w.rows) for w in queues.windows.summaries(width=60))
    unplaced = [q.event_id for q in queues.records.peek(10, without_event_time=True)]
    if "event_ts" in layout:
        assert windows == [("m-1", 2), ("m-2", 1), ("m-3", 1)] and unplaced == []
    else:  # rows queued before pre-aggregation have no event time: forwarded as they are
        assert windows == [("m-3", 1)] and unplaced == ["m-1-0", "m-2-1", "m-1-2"]
    queues.close()
    reopened = open_queues(path)  # opening an upgraded file again changes nothing
    assert version_of(path) == LATEST and reopened.records.depth() == 4


def test_a_new_file_starts_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "queue.sqlite3"
    open_queues(path).close()
    assert version_of(path) == LATEST


def test_a_file_from_a_newer_agent_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    open_queues(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {LATEST + 1}")
    db.close()
    with pytest.raises(InvalidInput, match=f"schema version {LATEST + 1}, newer") as refused:
        open_queues(path)
    assert str(path) in refused.value.message
