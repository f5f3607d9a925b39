"""Dataset snapshots: Parquet with ``event_id``, ``entity_id``, ``event_time``, one column per
feature (in the feature set's order) and ``label``; and the time-based split."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from millrace_trainer.errors import TrainingError

MIN_ROWS = 10
_REQUIRED = ("event_id", "event_time", "label")


@dataclass(frozen=True)
class Snapshot:
    """The usable rows of a snapshot, ordered by event time (then event id)."""

    features: list[str]
    x: np.ndarray
    y: np.ndarray
    event_time: np.ndarray
    event_id: np.ndarray
    dropped: int

    @property
    def rows(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray
    holdout_from: str

    @property
    def x_holdout32(self) -> np.ndarray:
        return self.x_holdout.astype(np.float32)


def read_snapshot(data: bytes, *, features: list[str]) -> Snapshot:
    """Parse a snapshot; rows without a label are dropped, a missing feature is NaN."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise TrainingError(f"snapshot is not readable Parquet: {exc}") from None
    missing = [c for c in (*_REQUIRED, *features) if c not in table.column_names]
    if missing:
        raise TrainingError(f"snapshot lacks columns {missing}", field="snapshot")
    x = (
        np.column_stack([_floats(table, name) for name in features])
        if features
        else np.empty((table.num_rows, 0))
    )
    x[~np.isfinite(x)] = np.nan  # missing stays missing: the model imputes it
    y = _floats(table, "label")
    keep = np.isfinite(y)
    times = _times(table)[keep]
    ids = np.asarray(table.column("event_id").to_pylist(), dtype=object)[keep].astype(str)
    order = np.lexsort((ids, times))
    return Snapshot(
        features=list(features),
        x=x[keep][order],
        y=y[keep][order],
        event_time=times[order],
        event_id=ids[order],
        dropped=int((~keep).sum()),
    )


def _floats(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    try:
        return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
    except pa.ArrowException:  # invalid values, or no cast from that type
        raise TrainingError(f"column '{name}' is not numeric", field=name) from None


def _times(table: pa.Table) -> np.ndarray:
    column = table.column("event_time")
    if not pa.types.is_timestamp(column.type):
        try:
            column = pc.cast(column, pa.timestamp("us", tz="UTC"))
        except pa.ArrowException:  # invalid values, or no cast from that type
            raise TrainingError(
                "column 'event_time' is not a timestamp", field="event_time"
            ) from None
    return np.asarray(column.cast(pa.timestamp("us", tz="UTC")).to_numpy()).astype("int64")


def time_split(snapshot: Snapshot, *, holdout_fraction: float) -> Split:
    """The last ``holdout_fraction`` of the rows in time is the holdout; no shuffling, so
    the model is judged on the future it did not see."""
    n = snapshot.rows
    if n < MIN_ROWS:
        raise TrainingError(f"snapshot has {n} usable rows; at least {MIN_ROWS} are needed")
    holdout = min(max(1, math.ceil(n * holdout_fraction)), n - 2)
    cut = n - holdout
    first = np.datetime64(int(snapshot.event_time[cut]), "us")
    return Split(
        x_train=snapshot.x[:cut],
        y_train=snapshot.y[:cut],
        x_holdout=snapshot.x[cut:],
        y_holdout=snapshot.y[cut:],
        holdout_from=f"{np.datetime_as_string(first, unit='s')}Z",
    )
