"""Messages no record could be taken from, kept with the reason for an operator to
read (``GET /v1/dead-letters``); bounded, the newest kept."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from millrace_edge_agent.adapters.queue.file import QueueFile, count_drops


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    received_at: float
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
            db.execute(
                "INSERT INTO dead_letters (received_at, source, topic, reason, payload)"
                " VALUES (?, ?, ?, ?, ?)",
                (self.clock(), source, topic, reason, payload),
            )
            db.execute(
                "DELETE FROM dead_letters WHERE seq <= (SELECT MAX(seq) FROM dead_letters) - ?",
                (self.max_rows,),
            )
            count_drops(db, f"{source}_message_invalid", 1)

    def newest(self, limit: int) -> list[DeadLetter]:
        """The newest first."""
        with self.file.read() as db:
            rows = db.execute(
                "SELECT seq, received_at, source, topic, reason, payload FROM dead_letters"
                " ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [DeadLetter(*row) for row in rows]
