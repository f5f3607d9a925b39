"""Prediction logs waiting for the centre. They come in batches from an in-memory
buffer (``millrace_edge_agent.prediction_logs``), so they cost one commit per batch,
not one per prediction. Never refused: past the bound the oldest give way (a prediction
is never held up), and every drop is counted in ``prediction_log_drops``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from millrace_edge_agent.adapters.queue.file import QueueFile, count_drops, row_count

_DROPS = "prediction_log_drops"


class PredictionLogQueue:
    def __init__(
        self,
        file: QueueFile,
        *,
        max_rows: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.file = file
        self.max_rows = max_rows
        self.clock = clock

    def append(self, logs: Sequence[tuple[str, bytes]], *, lost_in_buffer: int = 0) -> int:
        """Store ``(request_id, body)`` pairs in one transaction, then drop (and count)
        the oldest beyond ``max_rows``; return how many were dropped.

        ``lost_in_buffer``: logs the in-memory buffer had no room for, counted here so
        the count survives a restart like the others."""
        with self.file.tx() as db:
            count_drops(db, "buffer_full", lost_in_buffer, table=_DROPS)
            db.executemany(
                "INSERT OR IGNORE INTO prediction_logs (request_id, body, logged_at)"
                " VALUES (?, ?, ?)",
                [(request_id, body, self.clock()) for request_id, body in logs],
            )
            excess = row_count(db, "prediction_logs") - self.max_rows
            if excess <= 0:
                return 0
            removed = int(
                db.execute(
                    "DELETE FROM prediction_logs WHERE seq IN "
                    "(SELECT seq FROM prediction_logs ORDER BY seq LIMIT ?)",
                    (excess,),
                ).rowcount
            )
            count_drops(db, "queue_full_dropped_oldest", removed, table=_DROPS)
            return removed

    def peek(self, limit: int) -> list[tuple[int, bytes]]:
        """The oldest logs as ``(seq, JSON body)``, in the order they were logged."""
        with self.file.read() as db:
            rows = db.execute(
                "SELECT seq, body FROM prediction_logs ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [(seq, bytes(body)) for seq, body in rows]

    def ack(self, seqs: Sequence[int]) -> None:
        with self.file.tx() as db:
            db.executemany("DELETE FROM prediction_logs WHERE seq = ?", [(s,) for s in seqs])

    def reject(self, seqs: Sequence[int], *, reason: str) -> None:
        """The centre refuses these for good: drop and count them."""
        with self.file.tx() as db:
            removed = sum(
                db.execute("DELETE FROM prediction_logs WHERE seq = ?", (s,)).rowcount for s in seqs
            )
            count_drops(db, reason, removed, table=_DROPS)

    def depth(self) -> int:
        with self.file.read() as db:
            return row_count(db, "prediction_logs")

    def drops(self) -> dict[str, int]:
        with self.file.read() as db:
            return dict(db.execute(f"SELECT reason, count FROM {_DROPS}").fetchall())
