"""The on-disk store-and-forward queue: SQLite in WAL mode, fsynced on every commit.

A record is in this file before its producer hears 202, so a crash, a ``kill -9`` or a
power cut after that answer loses nothing. Rows leave the queue only when the centre
acknowledged them (``ack``) or when a bound forces a drop, and every drop is counted
in the ``drops`` table, which survives restarts like the rows do. Prediction logs come
in batches from an in-memory buffer (``prediction_logs.PredictionLogBuffer``), so they
cost one commit per batch, not one per prediction.

    records(seq, event_id UNIQUE, dataset, entity_id, body, enqueued_at, event_ts)
    drops(reason, count)
    closed_windows(dataset, entity_id, closed_until)   pre-aggregation: sent up to here
    heartbeats(seq, body)        reports waiting for the registry (bounded, oldest dropped)
    dead_letters(seq, received_at, source, topic, reason, payload)
                                 messages no record could be taken from (bounded, newest kept)
    prediction_logs(seq, request_id UNIQUE, body, logged_at)
                                 prediction logs waiting for the centre (bounded, oldest dropped)
    prediction_log_drops(reason, count)
                                 prediction logs that will never reach the centre
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
from millrace_common.windows import tumbling_start

from millrace_edge_agent.preaggregation import WindowSummary

Policy = Literal["reject-new", "drop-oldest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    dataset TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    body BLOB NOT NULL,
    enqueued_at REAL NOT NULL,
    event_ts REAL
);
CREATE TABLE IF NOT EXISTS drops (reason TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS heartbeats (seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    source TEXT NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS prediction_logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    logged_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS prediction_log_drops (reason TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS closed_windows (
    dataset TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    closed_until REAL NOT NULL,
    PRIMARY KEY (dataset, entity_id)
);
"""
_ENTITY_INDEX = (
    "CREATE INDEX IF NOT EXISTS records_entity ON records (dataset, entity_id, event_ts)"
)


@dataclass(frozen=True)
class Queued:
    seq: int
    event_id: str
    dataset: str
    entity_id: str
    record: dict  # type: ignore[type-arg]
    enqueued_at: float


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    received_at: float
    source: str
    topic: str
    reason: str
    payload: bytes


@dataclass(frozen=True)
class NewRecord:
    event_id: str
    dataset: str
    entity_id: str
    record: dict  # type: ignore[type-arg]
    event_ts: float | None = None
    """The record's event time (epoch seconds), when the agent knows its dataset."""


class QueueFull(Exception):
    """The queue is at its row bound and the policy is ``reject-new``."""

    def __init__(self, *, depth: int, max_rows: int, refused: int) -> None:
        super().__init__(
            f"the site's queue is full ({depth} of {max_rows} records) and its "
            f"policy is reject-new: {refused} record(s) refused, retry later"
        )
        self.refused = refused


class DiskQueue:
    """Thread-safe: the agent calls it from worker threads; one connection, one lock."""

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int,
        max_age: float,
        policy: Policy,
        max_heartbeats: int = 2000,
        max_dead_letters: int = 1000,
        max_prediction_logs: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_rows = max_rows
        self.max_age = max_age
        self.policy = policy
        self.max_heartbeats = max_heartbeats
        self.max_dead_letters = max_dead_letters
        self.max_prediction_logs = max_prediction_logs
        self.clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # survive a power cut, not only a crash
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(records)")}
        if "event_ts" not in columns:  # a queue file written before pre-aggregation existed
            self._db.execute("ALTER TABLE records ADD COLUMN event_ts REAL")
        self._db.execute(_ENTITY_INDEX)
        # the same function cuts windows in SQL and in Python, so both always agree
        self._db.create_function("window_start", 2, _window_start, deterministic=True)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def append(self, records: Sequence[NewRecord], *, count_refused: bool = True) -> dict[str, int]:
        """Store all of ``records`` or none; return the drops this caused, by reason.

        A record whose event id is already queued is kept once (a producer's retry).
        ``count_refused=False``: a refusal is not a drop, because the caller keeps the
        records and offers them again (an MQTT message left with its broker)."""
        refused: QueueFull | None = None
        with self._tx() as db:
            dropped = {"expired": self._expire(db)}
            room = self.max_rows - _depth(db)
            if len(records) > room and self.policy == "reject-new":
                # counted (and committed) before the refusal: what the centre will miss
                _count(db, "queue_full_rejected", len(records) if count_refused else 0)
                refused = QueueFull(depth=_depth(db), max_rows=self.max_rows, refused=len(records))
                records = []
            elif len(records) > room:
                # a batch larger than the whole queue keeps only its newest max_rows records
                overflow = max(0, len(records) - self.max_rows)
                records = records[overflow:]
                _count(db, "queue_full_dropped_oldest", overflow)
                dropped["queue_full_dropped_oldest"] = overflow + self._drop_oldest(
                    db, len(records) - room
                )
            now = self.clock()
            db.executemany(
                "INSERT OR IGNORE INTO records "
                "(event_id, dataset, entity_id, body, enqueued_at, event_ts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (r.event_id, r.dataset, r.entity_id, orjson.dumps(r.record), now, r.event_ts)
                    for r in records
                ],
            )
        if refused is not None:
            raise refused
        return {k: v for k, v in dropped.items() if v}

    def _drop_oldest(self, db: sqlite3.Connection, count: int) -> int:
        removed = db.execute(
            "DELETE FROM records WHERE seq IN (SELECT seq FROM records ORDER BY seq LIMIT ?)",
            (count,),
        ).rowcount
        _count(db, "queue_full_dropped_oldest", removed)
        return removed

    def _expire(self, db: sqlite3.Connection) -> int:
        cutoff = self.clock() - self.max_age
        removed = db.execute("DELETE FROM records WHERE enqueued_at < ?", (cutoff,)).rowcount
        _count(db, "expired", removed)
        return removed

    def expire(self) -> int:
        """Drop (and count) records older than ``max_age``; return how many."""
        with self._tx() as db:
            return self._expire(db)

    def peek(self, limit: int, *, without_event_time: bool = False) -> list[Queued]:
        """The oldest records of one dataset, in queue order, stopping where the dataset
        changes, so forwarding batch by batch keeps the arrival order.

        ``without_event_time``: only records queued with no event time, which
        pre-aggregation cannot place in a window (queued before it was switched on)."""
        where = "WHERE event_ts IS NULL " if without_event_time else ""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, dataset, entity_id, body, enqueued_at FROM records "
                f"{where}ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        batch: list[Queued] = []
        for seq, event_id, dataset, entity_id, body, at in rows:
            if batch and dataset != batch[0].dataset:
                break
            batch.append(Queued(seq, event_id, dataset, entity_id, orjson.loads(body), at))
        return batch

    def ack(self, seqs: Sequence[int]) -> None:
        """The centre has these: forget them."""
        with self._tx() as db:
            db.executemany("DELETE FROM records WHERE seq = ?", [(s,) for s in seqs])

    def reject(self, seqs: Sequence[int], *, reason: str) -> None:
        """The centre refuses these for good: drop and count them."""
        with self._tx() as db:
            removed = sum(
                db.execute("DELETE FROM records WHERE seq = ?", (s,)).rowcount for s in seqs
            )
            _count(db, reason, removed)

    # pre-aggregation: windows of event time per entity
    def windows(self, *, width: int) -> list[WindowSummary]:
        """Every window that has queued records, summarised (the rows stay on disk)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT dataset, entity_id, window_start(event_ts, ?) AS start, MIN(seq), "
                "MAX(enqueued_at), COUNT(*) FROM records WHERE event_ts IS NOT NULL "
                "GROUP BY dataset, entity_id, start",
                (width,),
            ).fetchall()
        return [WindowSummary(*row) for row in rows]

    def window_rows(self, window: WindowSummary, *, width: int) -> list[Queued]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, dataset, entity_id, body, enqueued_at FROM records "
                "WHERE dataset = ? AND entity_id = ? AND event_ts >= ? AND event_ts < ? "
                "ORDER BY event_ts, seq",
                (window.dataset, window.entity_id, window.start, window.start + width),
            ).fetchall()
        return [
            Queued(seq, eid, ds, ent, orjson.loads(body), at)
            for seq, eid, ds, ent, body, at in rows
        ]

    def ack_windows(
        self, seqs: Sequence[int], *, closed_until: dict[tuple[str, str], float]
    ) -> None:
        """The centre has the aggregates of these rows: forget the rows and remember,
        per entity, how far its windows were sent, in one transaction."""
        with self._tx() as db:
            db.executemany("DELETE FROM records WHERE seq = ?", [(s,) for s in seqs])
            db.executemany(
                "INSERT INTO closed_windows (dataset, entity_id, closed_until) VALUES (?, ?, ?)"
                " ON CONFLICT(dataset, entity_id) DO UPDATE SET "
                "closed_until = MAX(closed_until, excluded.closed_until)",
                [(ds, ent, until) for (ds, ent), until in closed_until.items()],
            )

    def drop_late(self) -> int:
        """Drop (and count) records of windows already sent: their aggregate left
        without them, and a second one would carry the same event id."""
        with self._tx() as db:
            removed = db.execute(
                "DELETE FROM records WHERE event_ts < (SELECT closed_until FROM closed_windows "
                "c WHERE c.dataset = records.dataset AND c.entity_id = records.entity_id)"
            ).rowcount
            _count(db, "late_for_window", removed)
            return int(removed)

    def depth(self) -> int:
        with self._lock:
            return _depth(self._db)

    def oldest_age(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(enqueued_at) FROM records").fetchone()
        return None if row[0] is None else self.clock() - row[0]

    def drops(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT reason, count FROM drops").fetchall())

    # heartbeats waiting for the registry: the centre later sees the outage
    def push_heartbeat(self, body: dict) -> None:  # type: ignore[type-arg]
        with self._tx() as db:
            db.execute("INSERT INTO heartbeats (body) VALUES (?)", (orjson.dumps(body),))
            db.execute(
                "DELETE FROM heartbeats WHERE seq <= (SELECT MAX(seq) FROM heartbeats) - ?",
                (self.max_heartbeats,),
            )

    def peek_heartbeats(self, limit: int) -> list[tuple[int, dict]]:  # type: ignore[type-arg]
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, body FROM heartbeats ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [(seq, orjson.loads(body)) for seq, body in rows]

    def ack_heartbeats(self, up_to: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM heartbeats WHERE seq <= ?", (up_to,))

    # messages no record could be taken from, kept for an operator to read
    def dead_letter(self, *, source: str, topic: str, reason: str, payload: bytes) -> None:
        """Keep the message and why it was refused, and count it as a drop of
        ``<source>_message_invalid``, in one transaction."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO dead_letters (received_at, source, topic, reason, payload)"
                " VALUES (?, ?, ?, ?, ?)",
                (self.clock(), source, topic, reason, payload),
            )
            db.execute(
                "DELETE FROM dead_letters WHERE seq <= (SELECT MAX(seq) FROM dead_letters) - ?",
                (self.max_dead_letters,),
            )
            _count(db, f"{source}_message_invalid", 1)

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        """The newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, received_at, source, topic, reason, payload FROM dead_letters"
                " ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [DeadLetter(*row) for row in rows]

    # prediction logs: never refused, the oldest give way (a prediction is never held up)
    def append_prediction_logs(
        self, logs: Sequence[tuple[str, bytes]], *, lost_in_buffer: int = 0
    ) -> int:
        """Store ``(request_id, body)`` pairs in one transaction, then drop (and count)
        the oldest beyond ``max_prediction_logs``; return how many were dropped.

        ``lost_in_buffer``: logs the in-memory buffer had no room for, counted here so
        the count survives a restart like the others."""
        with self._tx() as db:
            _count(db, "buffer_full", lost_in_buffer, table="prediction_log_drops")
            db.executemany(
                "INSERT OR IGNORE INTO prediction_logs (request_id, body, logged_at)"
                " VALUES (?, ?, ?)",
                [(request_id, body, self.clock()) for request_id, body in logs],
            )
            excess = _prediction_log_depth(db) - self.max_prediction_logs
            if excess <= 0:
                return 0
            removed = int(
                db.execute(
                    "DELETE FROM prediction_logs WHERE seq IN "
                    "(SELECT seq FROM prediction_logs ORDER BY seq LIMIT ?)",
                    (excess,),
                ).rowcount
            )
            _count(db, "queue_full_dropped_oldest", removed, table="prediction_log_drops")
            return removed

    def peek_prediction_logs(self, limit: int) -> list[tuple[int, bytes]]:
        """The oldest logs as ``(seq, JSON body)``, in the order they were logged."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, body FROM prediction_logs ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [(seq, bytes(body)) for seq, body in rows]

    def ack_prediction_logs(self, seqs: Sequence[int]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM prediction_logs WHERE seq = ?", [(s,) for s in seqs])

    def reject_prediction_logs(self, seqs: Sequence[int], *, reason: str) -> None:
        """The centre refuses these for good: drop and count them."""
        with self._tx() as db:
            removed = sum(
                db.execute("DELETE FROM prediction_logs WHERE seq = ?", (s,)).rowcount for s in seqs
            )
            _count(db, reason, removed, table="prediction_log_drops")

    def prediction_log_depth(self) -> int:
        with self._lock:
            return _prediction_log_depth(self._db)

    def prediction_log_drops(self) -> dict[str, int]:
        with self._lock:
            return dict(
                self._db.execute("SELECT reason, count FROM prediction_log_drops").fetchall()
            )


def _window_start(event_ts: float, width: int) -> int:
    return tumbling_start(event_ts, width=width)


def _depth(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM records").fetchone()[0])


def _prediction_log_depth(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM prediction_logs").fetchone()[0])


def _count(db: sqlite3.Connection, reason: str, count: int, *, table: str = "drops") -> None:
    if count:
        db.execute(
            f"INSERT INTO {table} (reason, count) VALUES (?, ?) ON CONFLICT(reason) "
            "DO UPDATE SET count = count + excluded.count",
            (reason, count),
        )
