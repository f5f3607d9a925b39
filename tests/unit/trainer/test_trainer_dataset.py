"""Snapshots and the time-based split: the holdout is the most recent slice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from millrace_trainer.dataset import read_snapshot, time_split
from millrace_trainer.errors import TrainingError

FEATURES = ["a", "b"]


def columns(n: int, *, order: list[int] | None = None) -> dict[str, object]:
    order = order or list(range(n))
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return {
        "event_id": [f"e-{i}" for i in order],
        "entity_id": ["m-1"] * n,
        "event_time": [start + timedelta(seconds=i) for i in order],
        "a": [float(i) for i in order],
        "b": [float(-i) for i in order],
        "label": [float(i % 2) for i in order],
    }


def test_split_orders_by_event_time_and_holds_out_the_latest(make_parquet) -> None:
    shuffled = [int(i) for i in np.random.default_rng(1).permutation(50)]
    snapshot = read_snapshot(make_parquet(columns(50, order=shuffled)), features=FEATURES)
    split = time_split(snapshot, holdout_fraction=0.2)
    assert len(split.y_holdout) == 10 and len(split.y_train) == 40
    assert split.x_holdout[:, 0].tolist() == [float(i) for i in range(40, 50)]
    assert split.x_train[:, 0].max() < split.x_holdout[:, 0].min()
    assert split.holdout_from == "2026-03-01T00:00:40Z"


def test_feature_columns_follow_the_feature_set_order(make_parquet) -> None:
    snapshot = read_snapshot(make_parquet(columns(12)), features=["b", "a"])
    assert snapshot.x[3].tolist() == [-3.0, 3.0]


def test_rows_without_label_are_dropped_and_missing_features_kept_missing(make_parquet) -> None:
    data = columns(20)
    data["label"][0] = None  # type: ignore[index]
    data["a"][5] = None  # type: ignore[index]
    snapshot = read_snapshot(make_parquet(data), features=FEATURES)
    assert (snapshot.rows, snapshot.dropped) == (19, 1)
    assert int(np.isnan(snapshot.x).sum()) == 1  # the model's imputer fills it


def test_iso_strings_are_accepted_as_event_times(make_parquet) -> None:
    data = columns(12)
    data["event_time"] = [f"2026-03-01T00:00:{59 - i:02d}Z" for i in range(12)]
    snapshot = read_snapshot(make_parquet(data), features=FEATURES)
    assert snapshot.x[0, 0] == 11.0


def test_missing_columns_are_named(make_parquet) -> None:
    data = columns(12)
    del data["b"]
    with pytest.raises(TrainingError, match=r"\['b'\]"):
        read_snapshot(make_parquet(data), features=FEATURES)


def test_too_few_rows_and_garbage_are_training_errors(make_parquet) -> None:
    with pytest.raises(TrainingError, match="at least 10"):
        time_split(read_snapshot(make_parquet(columns(5)), features=FEATURES), holdout_fraction=0.2)
    with pytest.raises(TrainingError, match="Parquet"):
        read_snapshot(b"not parquet", features=FEATURES)
