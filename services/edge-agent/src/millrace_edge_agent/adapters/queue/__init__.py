"""The agent's on-disk queues: one SQLite file in WAL mode (``file.QueueFile``), one
small class per queue over its shared connection, the schema versioned
(``migrations``). What is in this file survives a crash, a ``kill -9`` or a power cut:
every commit is fsynced."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from millrace_edge_agent.adapters.queue.dead_letters import DeadLetterLog
from millrace_edge_agent.adapters.queue.features import FeatureTables
from millrace_edge_agent.adapters.queue.file import QueueFile
from millrace_edge_agent.adapters.queue.heartbeats import HeartbeatQueue
from millrace_edge_agent.adapters.queue.prediction_logs import PredictionLogQueue
from millrace_edge_agent.adapters.queue.records import Policy, RecordQueue
from millrace_edge_agent.adapters.queue.windows import RecordWindows


@dataclass(frozen=True)
class Queues:
    file: QueueFile
    records: RecordQueue
    windows: RecordWindows
    heartbeats: HeartbeatQueue
    dead_letters: DeadLetterLog
    prediction_logs: PredictionLogQueue
    features: FeatureTables

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        max_rows: int,
        max_age: float,
        policy: Policy,
        max_heartbeats: int = 2000,
        max_dead_letters: int = 1000,
        max_prediction_logs: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> Queues:
        """Open (or create) the file, migrate it, and the queues over it."""
        file = QueueFile(path)
        dead_letters = DeadLetterLog(file, max_rows=max_dead_letters, clock=clock)
        return cls(
            file=file,
            records=RecordQueue(
                file,
                max_rows=max_rows,
                max_age=max_age,
                policy=policy,
                clock=clock,
                dead_letters=dead_letters,
            ),
            windows=RecordWindows(file),
            heartbeats=HeartbeatQueue(file, max_rows=max_heartbeats),
            dead_letters=dead_letters,
            prediction_logs=PredictionLogQueue(file, max_rows=max_prediction_logs, clock=clock),
            features=FeatureTables(file, clock=clock),
        )

    def close(self) -> None:
        self.file.close()
