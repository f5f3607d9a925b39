"""Point-in-time retrieval (``POST /v1/feature-sets/{name}/historical-features``): for each
entity and time, the newest feature row at or before that time, never a later one; none
before the entity's first event; only the feature set's current version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from millrace_common.db import make_engine, session_factory
from millrace_common.feature_engine import Row
from millrace_common.feature_store import metadata
from millrace_common.project import load_project
from millrace_features.adapters.store import FeatureStore

from tests.support.paths import FACTORY

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def row(entity: str, minutes: int, value: float, *, version: int, label: float | None) -> Row:
    return Row(
        event_id=f"{entity}-{minutes}-v{version}",
        feature_set="machine_health",
        feature_set_version=version,
        entity_id=entity,
        event_time=T0 + timedelta(minutes=minutes),
        features={"temperature_mean_10m": value},
        label=label,
        inputs={},
    )


def test_each_entity_is_answered_as_it_was_known_at_its_time(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/millrace.db")
    metadata.create_all(engine)
    store = FeatureStore(session_factory(engine))
    feature_set = load_project(FACTORY).feature_set("machine_health")
    version = feature_set.version
    store.write(
        [
            row("m-1", 0, 10.0, version=version, label=0),
            row("m-1", 10, 20.0, version=version, label=1),
            row("m-1", 20, 30.0, version=version, label=None),
            row("m-1", 15, 99.0, version=version + 1, label=1),  # another version: ignored
            row("m-2", 5, 50.0, version=version, label=0),
        ]
    )
    asked = [
        ("m-1", T0 - timedelta(minutes=1)),  # before its first event
        ("m-1", T0 + timedelta(minutes=10)),  # exactly at an event: that event's row
        ("m-1", T0 + timedelta(minutes=19, seconds=59)),  # between: the earlier row
        ("m-2", T0 + timedelta(days=30)),
        ("m-3", T0 + timedelta(days=30)),  # never seen
        ("m-1", T0 + timedelta(minutes=25)),
    ]
    found = store.as_of(feature_set, asked)
    values = [None if f is None else f.features["temperature_mean_10m"] for f in found]
    assert values == [None, 20.0, 20.0, 50.0, None, 30.0]
    assert [None if f is None else f.label for f in found] == [None, 1.0, 1.0, 0.0, None, None]
    assert found[1] is not None and found[1].event_time == T0 + timedelta(minutes=10)
    with engine.connect() as conn:  # the later rows were there all along
        assert conn.execute(sa.text("SELECT count(*) FROM features.offline_rows")).scalar() == 5
