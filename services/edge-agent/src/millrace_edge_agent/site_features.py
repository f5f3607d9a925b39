"""The centre's feature engine at the site (``millrace_common.feature_engine``, the one
module both run): every record the agent takes in becomes the project's feature rows,
in the transaction that queues it, and ``entity_ids`` predictions read the latest row
per entity.

Windows live in the engine's memory (at most ``max_windows`` entities) and start from
the readings kept in the queue file, which the same transaction writes: a restart, even
a ``kill -9``, resumes them exactly, and an entity evicted from memory comes back whole.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from millrace_common.contracts import ModelSchema
from millrace_common.errors import NotFound
from millrace_common.feature_engine import Event, FeatureEngine, Reading, Row
from millrace_common.project import FeatureSet, Project

from millrace_edge_agent.adapters.queue.features import FeatureTables, OnlineRow
from millrace_edge_agent.adapters.queue.records import NewRecord
from millrace_edge_agent.metrics import FEATURE_ROWS


class SiteFeatures:
    def __init__(self, *, project: Project, tables: FeatureTables, max_windows: int) -> None:
        self.tables = tables
        self._max_windows = max_windows
        self._tx: sqlite3.Connection | None = None
        self._plan(project)

    def _plan(self, project: Project) -> None:
        self.project = project
        self.engine = FeatureEngine(project, source=self, max_windows=self._max_windows)
        # the fields whose newest value outlives the window (agg: latest), per feature set
        self._latest = {
            fs.name: fs.latest_fields for fs in project.feature_sets.values() if fs.latest_fields
        }
        # how far behind its entity's newest reading a reading is kept, per feature set
        self._keep = {
            plan.name: float(plan.keep_seconds)
            for dataset in project.datasets
            for plan in self.engine.plans_of(dataset)
        }

    def use_project(self, project: Project) -> None:
        """A reloaded project (SIGHUP): the next records go through its feature sets,
        their windows started again from the file."""
        with self.tables.file.read():  # the engine runs under the file's lock only
            self._plan(project)

    def take(self, db: sqlite3.Connection, records: Sequence[NewRecord]) -> list[Row]:
        """The rows of ``records`` (validated against the project), computed and
        written on ``db``, inside the transaction that queues them. The caller calls
        ``forget`` when that transaction does not commit."""
        events = [Event(r.valid, r.event_id) for r in records if r.valid is not None]
        self._tx = db
        try:
            rows = self.engine.rows(events)
        finally:
            self._tx = None
        self.tables.write(db, rows, keep_seconds=self._keep, latest_fields=self._latest)
        return rows

    def counted(self, rows: Sequence[Row]) -> None:
        """Count rows that reached the disk."""
        per_set: dict[str, int] = {}
        for row in rows:
            per_set[row.feature_set] = per_set.get(row.feature_set, 0) + 1
        for feature_set, count in per_set.items():
            FEATURE_ROWS.labels(feature_set).inc(count)

    def forget(self) -> None:
        """Drop the windows in memory: a transaction that did not commit may have moved
        them past the file; they start again from what the file holds."""
        with self.tables.file.read():  # the engine runs under the file's lock only
            self.engine.forget()

    def load(
        self, feature_set: FeatureSet, entities: Collection[str], *, keep_seconds: float
    ) -> dict[str, list[Reading]]:
        """The engine's ``WindowSource``: the readings the file keeps (pruned to the keep
        horizon as they are written), read in the transaction under way."""
        if self._tx is None:
            raise RuntimeError("windows load inside a transaction of the queue file only")
        return self.tables.load(self._tx, feature_set.name, entities)

    async def lookup(self, schema: ModelSchema, entity_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The predict routes' ``OnlineLookup``: each entity's newest online row among
        the feature sets that hold every feature the model takes; NotFound names the
        first entity that has none."""
        needed = set(schema.features)
        sets = [
            fs.name for fs in self.project.feature_sets.values() if needed <= {*fs.feature_names}
        ]
        rows = await asyncio.to_thread(self.tables.online, sets, entity_ids)
        found = _newest(rows)
        for i, entity_id in enumerate(entity_ids):
            if entity_id not in found:
                raise NotFound(
                    f"no online features for entity '{entity_id}'", field=f"entity_ids[{i}]"
                )
        return [found[entity_id] for entity_id in entity_ids]


def _newest(rows: Sequence[OnlineRow]) -> dict[str, dict[str, float]]:
    best: dict[str, OnlineRow] = {}
    for row in rows:
        if row.entity_id not in best or row.event_time > best[row.entity_id].event_time:
            best[row.entity_id] = row
    return {entity: row.features for entity, row in best.items()}
