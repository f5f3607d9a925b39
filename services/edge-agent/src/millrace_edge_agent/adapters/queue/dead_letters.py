"""What could not be taken or delivered, kept with the reason for an operator to read
(``GET /v1/dead-letters``): MQTT messages no record could be taken from, and records
the centre refused for good. Bounded, the newest kept; a payload is kept up to
``KEPT_BYTES`` (a message refused for its size says how large it was)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from millrace_edge_agent.adapters.queue.file import QueueFile, count_drops, row_count

KEPT_BYTES = 64 * 1024
"""The most of a payload a dead letter keeps."""


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    received_at: float
    source: str
    topic: str
    reason: str
    payload: bytes


@dataclass(frozen=True)
class Letter:
    """A dead letter to keep: ``source`` ``mqtt`` (``topic`` the message's) or ``centre``
    (``topic`` the record's dataset)."""

    source: str
    topic: str
    reason: str
    payload: bytes


class DeadLetterLog:
    def __init__(
        self, file: QueueFile, *, max_rows: int = 1000, clock: Callable[[], float] = time.time
    ) -> None:
        self.file = file
        self.max_rows = max_rows
        self.clock = clock

    def add(self, *, source: str, topic: str, reason: str, payload: bytes) -> None:
        """Keep the message and why it was refused, and count it as a drop of
        ``<source>_message_invalid``, in one transaction."""
        with self.file.tx() as db:
            self.keep(db, [Letter(source, topic, reason, payload)])
            count_drops(db, f"{source}_message_invalid", 1)

    def keep(self, db: sqlite3.Connection, letters: Sequence[Letter]) -> None:
        """Keep ``letters`` in the caller's transaction (the one that drops what they
        stand for), then only the newest ``max_rows``."""
        now = self.clock()
        db.executemany(
            "INSERT INTO dead_letters (received_at, source, topic, reason, payload)"
            " VALUES (?, ?, ?, ?, ?)",
            [(now, x.source, x.topic, *_bounded(x.reason, x.payload)) for x in letters],
        )
        db.execute(
            "DELETE FROM dead_letters WHERE seq <= (SELECT MAX(seq) FROM dead_letters) - ?",
            (self.max_rows,),
        )

    def newest(self, limit: int) -> list[DeadLetter]:
        """The newest first."""
        with self.file.read() as db:
            rows = db.execute(
                "SELECT seq, received_at, source, topic, reason, payload FROM dead_letters"
                " ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [DeadLetter(*row) for row in rows]

    def count(self) -> int:
        """How many are kept (at most ``max_rows``)."""
        with self.file.read() as db:
            return row_count(db, "dead_letters")


def _bounded(reason: str, payload: bytes) -> tuple[str, bytes]:
    if len(payload) <= KEPT_BYTES:
        return reason, payload
    return f"{reason} (kept: the first {KEPT_BYTES} of {len(payload)} bytes)", payload[:KEPT_BYTES]
