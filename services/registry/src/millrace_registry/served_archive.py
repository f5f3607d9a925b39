"""An archive of what was served: each model's predictions of a day, with the label each got
(if any), as one Parquet file in the object store, so quality can be recomputed and a model
trained on served traffic after the monitor's rows are purged. A day is written once it
has been over for ``after`` (late labels have had their time), and never again.

    monitoring/<model>/predictions/day=<YYYY-MM-DD>.parquet"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
import structlog
from millrace_common.objectstore import ObjectStore
from sqlalchemy.orm import Session, sessionmaker

from millrace_registry.adapters.rows import utc
from millrace_registry.adapters.tables import served_predictions
from millrace_registry.live_quality import Served, Truth
from millrace_registry.monitoring import Monitoring

log = structlog.get_logger(__name__)
PREFIX = "monitoring"


def day_key(model: str, day: datetime) -> str:
    return f"{PREFIX}/{model}/predictions/day={day:%Y-%m-%d}.parquet"


class ServedArchive:
    def __init__(
        self,
        *,
        factory: sessionmaker[Session],
        store: ObjectStore,
        monitoring: Monitoring,
        after: timedelta = timedelta(hours=24),
    ) -> None:
        self._factory = factory
        self._store = store
        self._monitoring = monitoring
        self._after = after

    def run(self, *, now: datetime | None = None) -> list[str]:
        """Write every finished day not archived yet; the keys written."""
        now = now or datetime.now(UTC)
        written = []
        for model, first in self._first_days():
            done = {info.key for info in self._store.list(f"{PREFIX}/{model}/predictions/")}
            day = first
            while day + timedelta(days=1) + self._after <= now:
                key = day_key(model, day)
                if key not in done:
                    rows = self._write(model, day, key)
                    if rows:
                        written.append(key)
                        log.info("served_archived", model=model, day=f"{day:%Y-%m-%d}", rows=rows)
                day += timedelta(days=1)
        return written

    def _first_days(self) -> list[tuple[str, datetime]]:
        t = served_predictions.c
        with self._factory() as session:
            found = session.execute(sa.select(t.model, sa.func.min(t.at)).group_by(t.model)).all()
        return [
            (model, datetime.combine(utc(first).date(), time(), UTC))
            for model, first in found
            if first is not None
        ]

    def _write(self, model: str, day: datetime, key: str) -> int:
        joined = self._monitoring.joined(model, since=day, until=day + timedelta(days=1))
        truths: dict[tuple[int, str, int], Truth] = {
            (i.served.version, i.served.request_id, i.served.row): i.truth for i in joined.labelled
        }
        served = sorted(
            [i.served for i in joined.labelled] + joined.unlabelled,
            key=lambda s: (s.at, s.request_id, s.row),
        )
        if not served:
            return 0
        buffer = io.BytesIO()
        pq.write_table(table(model, served, truths), buffer)
        self._store.put(key, buffer.getvalue())
        return len(served)


def table(
    model: str, served: Sequence[Served], truths: dict[tuple[int, str, int], Truth]
) -> pa.Table:
    """One row per answered row: what answered, what it said, and the label it got."""
    got = [truths.get((s.version, s.request_id, s.row)) for s in served]
    return pa.table(
        {
            "model": [model] * len(served),
            "version": pa.array([s.version for s in served], pa.int32()),
            "alias": [s.alias for s in served],
            "site": [s.site for s in served],
            "request_id": [s.request_id for s in served],
            "row": pa.array([s.row for s in served], pa.int32()),
            "entity_id": [s.entity_id for s in served],
            "at": pa.array([s.at for s in served], pa.timestamp("us", tz="UTC")),
            "label": _values([s.label for s in served]),
            "value": pa.array([s.value for s in served], pa.float64()),
            "probabilities": pa.array([s.probabilities for s in served], pa.list_(pa.float64())),
            "inputs": pa.array([s.inputs for s in served], pa.list_(pa.float64())),
            "truth": _values([None if t is None else t.value for t in got]),
            "truth_event_id": [None if t is None else t.event_id for t in got],
            "truth_observed_at": pa.array(
                [None if t is None else t.at for t in got], pa.timestamp("us", tz="UTC")
            ),
        }
    )


def _values(values: list[Any]) -> pa.Array:
    """Numbers as float64 (a class 1 is 1.0), anything else as text."""
    if all(v is None or isinstance(v, int | float) for v in values):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array([None if v is None else str(v) for v in values], pa.string())
