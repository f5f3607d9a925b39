"""Synthetic dataset snapshots: the factory's machines as Parquet, in the layout the
features service exports and the trainer reads."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.support.models import FACTORY_FEATURES


def factory_snapshot(
    rows: int = 600,
    *,
    seed: int = 3,
    start: datetime | None = None,
    features: Sequence[str] = FACTORY_FEATURES,
) -> bytes:
    """Machines whose failures follow heat and vibration, as Parquet in the snapshot layout
    the trainer reads (the ``machine_health`` feature set: ``features`` of its columns)."""
    rng = np.random.default_rng(seed)
    temperature = rng.normal(75, 6, rows)
    vibration = rng.gamma(2.0, 0.25, rows)
    risk = 0.25 * (temperature - 75) + 4.0 * (vibration - 0.5) + rng.normal(0, 0.8, rows)
    begin = start or datetime(2026, 1, 1, tzinfo=UTC)
    values = {
        "temperature_mean_10m": temperature,
        "temperature_max_10m": temperature + rng.gamma(2.0, 1.0, rows),
        "vibration_mean_10m": vibration,
        "vibration_std_10m": rng.gamma(2.0, 0.05, rows),
        "pressure_mean_10m": rng.normal(3.0, 0.2, rows),
        "speed_last": rng.normal(1500, 50, rows),
        "readings_10m": rng.integers(5, 11, rows).astype(float),
    }
    columns = {
        "event_id": [f"e-{i}" for i in range(rows)],
        "entity_id": [f"m-{i % 12}" for i in range(rows)],
        "event_time": pa.array(
            [begin + timedelta(minutes=i) for i in range(rows)], type=pa.timestamp("us", tz="UTC")
        ),
        **{name: values[name] for name in features},
        "label": (risk > 1.0).astype(float),
    }
    return parquet(columns)


def parquet(columns: dict[str, object]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()
