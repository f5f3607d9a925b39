"""Heartbeats waiting for the registry, so the centre later sees an outage whole;
bounded, the oldest give way."""

from __future__ import annotations

from typing import Any

import orjson

from millrace_edge_agent.adapters.queue.file import QueueFile


class HeartbeatQueue:
    def __init__(self, file: QueueFile, *, max_rows: int = 2000) -> None:
        self.file = file
        self.max_rows = max_rows

    def push(self, body: dict[str, Any]) -> None:
        with self.file.tx() as db:
            db.execute("INSERT INTO heartbeats (body) VALUES (?)", (orjson.dumps(body),))
            db.execute(
                "DELETE FROM heartbeats WHERE seq <= (SELECT MAX(seq) FROM heartbeats) - ?",
                (self.max_rows,),
            )

    def peek(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """The oldest, as ``(seq, body)``."""
        with self.file.read() as db:
            rows = db.execute(
                "SELECT seq, body FROM heartbeats ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [(seq, orjson.loads(body)) for seq, body in rows]

    def ack(self, up_to: int) -> None:
        with self.file.tx() as db:
            db.execute("DELETE FROM heartbeats WHERE seq <= ?", (up_to,))
