"""Pre-aggregation's view of the records queue: windows of event time per entity, and
how far each entity's windows were sent (``closed_windows``)."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from millrace_common.windows import tumbling_start

from millrace_edge_agent.adapters.queue.file import QueueFile, count_drops
from millrace_edge_agent.adapters.queue.records import Queued
from millrace_edge_agent.preaggregation import WindowSummary


class RecordWindows:
    def __init__(self, file: QueueFile) -> None:
        self.file = file
        # the same function cuts windows in SQL and in Python, so both always agree
        file.define_function("window_start", 2, _window_start)

    def summaries(self, *, width: int) -> list[WindowSummary]:
        """Every window that has queued records, summarised (the rows stay on disk)."""
        with self.file.read() as db:
            rows = db.execute(
                "SELECT dataset, entity_id, window_start(event_ts, ?) AS start, MIN(seq), "
                "MAX(enqueued_at), COUNT(*) FROM records WHERE event_ts IS NOT NULL "
                "GROUP BY dataset, entity_id, start",
                (width,),
            ).fetchall()
        return [WindowSummary(*row) for row in rows]

    def rows(self, window: WindowSummary, *, width: int) -> list[Queued]:
        """The queued records of one window, in event-time order."""
        with self.file.read() as db:
            rows = db.execute(
                "SELECT seq, event_id, dataset, entity_id, body, enqueued_at FROM records "
                "WHERE dataset = ? AND entity_id = ? AND event_ts >= ? AND event_ts < ? "
                "ORDER BY event_ts, seq",
                (window.dataset, window.entity_id, window.start, window.start + width),
            ).fetchall()
        return [
            Queued(seq, eid, ds, ent, orjson.loads(body), at)
            for seq, eid, ds, ent, body, at in rows
        ]

    def ack(self, seqs: Sequence[int], *, closed_until: dict[tuple[str, str], float]) -> None:
        """The centre has the aggregates of these rows: forget the rows and remember,
        per entity, how far its windows were sent, in one transaction."""
        with self.file.tx() as db:
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
        with self.file.tx() as db:
            removed = db.execute(
                "DELETE FROM records WHERE event_ts < (SELECT closed_until FROM closed_windows "
                "c WHERE c.dataset = records.dataset AND c.entity_id = records.entity_id)"
            ).rowcount
            count_drops(db, "late_for_window", removed)
            return int(removed)


def _window_start(event_ts: float, width: int) -> int:
    return tumbling_start(event_ts, width=width)
