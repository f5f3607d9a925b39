"""``retrain.lookback``: a snapshot holds the labelled rows of the last stretch of event
time up to the newest one (after the world changed, the model learns the new one);
without it, every labelled row."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from millrace_common.db import make_engine, session_factory
from millrace_common.feature_engine import Row
from millrace_common.feature_store import metadata
from millrace_common.project import RetrainPolicy, load_project
from millrace_features.adapters.snapshots import build_parquet
from millrace_features.adapters.store import FeatureStore

from tests.support.paths import FACTORY

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_lookback_keeps_only_the_newest_stretch_of_labelled_rows(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/millrace.db")
    metadata.create_all(engine)
    factory = session_factory(engine)
    feature_set = load_project(FACTORY).feature_set("machine_health")
    FeatureStore(factory).write(
        [
            Row(
                event_id=f"e-{minutes}",
                feature_set=feature_set.name,
                feature_set_version=feature_set.version,
                entity_id="m-1",
                event_time=T0 + timedelta(minutes=minutes),
                features={"temperature_mean_10m": float(minutes)},
                label=None if minutes == 60 else 1.0,
                inputs={},
            )
            for minutes in (0, 20, 40, 50, 55, 60)
        ]
    )
    policy = RetrainPolicy(lookback="15m")
    with factory() as session:
        every, all_rows, _cutoff, _ref = build_parquet(session, feature_set)
        recent, recent_rows, cutoff, _ref = build_parquet(
            session, feature_set, lookback=policy.lookback_seconds
        )
    assert all_rows == 5  # the unlabelled row at 60 is never in a snapshot
    times = pq.read_table(io.BytesIO(recent)).column("event_id").to_pylist()
    assert (recent_rows, times) == (3, ["e-40", "e-50", "e-55"])  # from 55 - 15 minutes on
    assert cutoff == T0 + timedelta(minutes=55)
