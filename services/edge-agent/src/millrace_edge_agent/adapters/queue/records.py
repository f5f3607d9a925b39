"""The records queue: what local producers sent, waiting for the centre.

A record is in the file before its producer hears 202, so a crash, a ``kill -9`` or a
power cut after that answer loses nothing. Rows leave only when the centre acknowledged
them (``ack``) or when a bound forces a drop, and every drop is counted in ``drops``,
which survives restarts like the rows do.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import orjson
from millrace_common.errors import StorageFull
from millrace_common.records import ValidRecord

from millrace_edge_agent.adapters.queue.dead_letters import DeadLetterLog, Letter
from millrace_edge_agent.adapters.queue.file import QueueFile, count_drops, row_count

Policy = Literal["reject-new", "drop-oldest"]
Within = Callable[[sqlite3.Connection, Sequence["NewRecord"]], None]
"""Work done on the stored records inside the transaction that stores them."""


@dataclass(frozen=True)
class NewRecord:
    event_id: str
    dataset: str
    entity_id: str
    record: dict  # type: ignore[type-arg]
    event_ts: float | None = None
    """The record's event time (epoch seconds), when the agent knows its dataset."""
    valid: ValidRecord | None = None
    """The record validated against its dataset, when the agent knows it (what the
    feature engine takes)."""
    body: bytes | None = None
    """``record`` as JSON, when intake already encoded it (to check its size)."""


@dataclass(frozen=True)
class Queued:
    seq: int
    event_id: str
    dataset: str
    entity_id: str
    record: dict  # type: ignore[type-arg]
    enqueued_at: float


class QueueFull(StorageFull):
    """The queue is at its row bound and the policy is ``reject-new`` (507); the
    message says how many records were refused, ``refused`` holds the number."""

    code = "queue_full"

    def __init__(self, *, depth: int, max_rows: int, refused: int) -> None:
        super().__init__(
            f"the site's queue is full ({depth} of {max_rows} records) and its "
            f"policy is reject-new: {refused} record(s) refused, retry later",
            field="records",
        )
        self.refused = refused


class RecordQueue:
    def __init__(
        self,
        file: QueueFile,
        *,
        max_rows: int,
        max_age: float,
        policy: Policy,
        clock: Callable[[], float] = time.time,
        dead_letters: DeadLetterLog | None = None,
    ) -> None:
        self.file = file
        self.max_rows = max_rows
        self.max_age = max_age
        self.policy = policy
        self.clock = clock
        self.dead_letters = dead_letters
        """Where ``reject`` keeps what it drops, with the reason."""

    def append(
        self,
        records: Sequence[NewRecord],
        *,
        count_refused: bool = True,
        within: Within | None = None,
    ) -> dict[str, int]:
        """Store all of ``records`` or none; return the drops this caused, by reason.

        A record whose event id is already queued is kept once (a producer's retry).
        Raises QueueFull when they do not fit under ``reject-new``;
        ``count_refused=False``: that refusal is not a drop, because the caller keeps
        the records and offers them again (an MQTT message left with its broker).
        ``within``: more work on the records stored, in the same transaction."""
        refused: QueueFull | None = None
        with self.file.tx() as db:
            dropped = {"expired": self._expire(db)}
            room = self.max_rows - row_count(db, "records")
            if len(records) > room and self.policy == "reject-new":
                # counted (and committed) before the refusal: what the centre will miss
                count_drops(db, "queue_full_rejected", len(records) if count_refused else 0)
                refused = QueueFull(
                    depth=row_count(db, "records"), max_rows=self.max_rows, refused=len(records)
                )
                records = []
            elif len(records) > room:
                # a batch larger than the whole queue keeps only its newest max_rows records
                overflow = max(0, len(records) - self.max_rows)
                records = records[overflow:]
                count_drops(db, "queue_full_dropped_oldest", overflow)
                dropped["queue_full_dropped_oldest"] = overflow + self._drop_oldest(
                    db, len(records) - room
                )
            now = self.clock()
            db.executemany(
                "INSERT OR IGNORE INTO records "
                "(event_id, dataset, entity_id, body, enqueued_at, event_ts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(r.event_id, r.dataset, r.entity_id, _body(r), now, r.event_ts) for r in records],
            )
            if within is not None and records:
                within(db, records)
        if refused is not None:
            raise refused
        return {k: v for k, v in dropped.items() if v}

    def _drop_oldest(self, db: sqlite3.Connection, count: int) -> int:
        removed = db.execute(
            "DELETE FROM records WHERE seq IN (SELECT seq FROM records ORDER BY seq LIMIT ?)",
            (count,),
        ).rowcount
        count_drops(db, "queue_full_dropped_oldest", removed)
        return int(removed)

    def _expire(self, db: sqlite3.Connection) -> int:
        cutoff = self.clock() - self.max_age
        removed = db.execute("DELETE FROM records WHERE enqueued_at < ?", (cutoff,)).rowcount
        count_drops(db, "expired", removed)
        return int(removed)

    def expire(self) -> int:
        """Drop (and count) records older than ``max_age``; return how many."""
        with self.file.tx() as db:
            return self._expire(db)

    def peek(self, limit: int, *, without_event_time: bool = False) -> list[Queued]:
        """The oldest records of one dataset, in queue order, stopping where the dataset
        changes, so forwarding batch by batch keeps the arrival order.

        ``without_event_time``: only records queued with no event time, which
        pre-aggregation cannot place in a window (queued before it was switched on)."""
        where = "WHERE event_ts IS NULL " if without_event_time else ""
        with self.file.read() as db:
            rows = db.execute(
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
        with self.file.tx() as db:
            db.executemany("DELETE FROM records WHERE seq = ?", [(s,) for s in seqs])

    def reject(self, seqs: Sequence[int], *, reason: str, letters: Sequence[Letter] = ()) -> None:
        """The centre refuses these for good: drop and count them, and keep ``letters``
        (what was sent, and why it was refused) as dead letters, in one transaction."""
        with self.file.tx() as db:
            removed = sum(
                db.execute("DELETE FROM records WHERE seq = ?", (s,)).rowcount for s in seqs
            )
            count_drops(db, reason, removed)
            if removed and letters and self.dead_letters is not None:
                self.dead_letters.keep(db, letters)

    def depth(self) -> int:
        with self.file.read() as db:
            return row_count(db, "records")

    def oldest_age(self) -> float | None:
        with self.file.read() as db:
            row = db.execute("SELECT MIN(enqueued_at) FROM records").fetchone()
        return None if row[0] is None else self.clock() - row[0]

    def drops(self) -> dict[str, int]:
        """Records that will never reach the centre, by reason, since the file was made."""
        with self.file.read() as db:
            return dict(db.execute("SELECT reason, count FROM drops").fetchall())


def _body(record: NewRecord) -> bytes:
    return record.body if record.body is not None else orjson.dumps(record.record)
