"""The one SQLite file every on-disk queue of the agent shares: WAL mode, fsynced on
every commit, one connection and one lock (the agent calls it from worker threads),
its schema brought to the current version when it is opened (``migrations``); and a
second, read-only connection for reads that must not wait for a transaction under way
(``snapshot``)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from millrace_edge_agent.adapters.queue.migrations import migrate


class QueueFile:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # survive a power cut, not only a crash
        migrate(self._db, path=path)
        self._snapshot_lock = threading.Lock()
        self._reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._reader.execute("PRAGMA query_only=1")

    def close(self) -> None:
        with self._lock, self._snapshot_lock:
            self._reader.close()
            self._db.close()

    def define_function(self, name: str, arity: int, function: Callable[..., Any]) -> None:
        """A deterministic SQL function on the shared connection."""
        with self._lock:
            self._db.create_function(name, arity, function, deterministic=True)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it reaches the disk, or none."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """Reads of what was last committed: in WAL mode they wait for no writer, so a
        lookup is not held up by a batch being queued (each statement its own snapshot)."""
        with self._snapshot_lock:
            yield self._reader


def count_drops(db: sqlite3.Connection, reason: str, count: int, *, table: str = "drops") -> None:
    """Add ``count`` to a drop counter (inside the caller's transaction)."""
    if count:
        db.execute(
            f"INSERT INTO {table} (reason, count) VALUES (?, ?) ON CONFLICT(reason) "
            "DO UPDATE SET count = count + excluded.count",
            (reason, count),
        )


def row_count(db: sqlite3.Connection, table: str) -> int:
    return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
