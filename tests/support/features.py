"""The features worker as the tests run it, and what an uninterrupted worker computes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from millrace_cli.processes import ProcessSpec, free_port, script, wait_until
from millrace_cli.simulator import factory_records, take
from millrace_common.contracts import RAW
from millrace_common.db import make_engine
from millrace_common.feature_engine import FeatureEngine
from millrace_common.feature_store import offline_rows
from millrace_common.project import load_project
from millrace_features.pipeline import RawMessage, event_of

from tests.support.kafka import produce_plain


def features_process(
    *,
    broker: str,
    database_url: str,
    object_store_url: str,
    project_dir: Path,
    data_dir: Path,
    env: dict[str, str] | None = None,
    group: str | None = None,
) -> ProcessSpec:
    """A features worker on a port of its own; in a consumer group of its own unless
    ``group`` names one that other workers share."""
    port = free_port()
    return ProcessSpec(
        name=f"features-{port}",
        argv=[script("millrace-features")],
        env={
            "MILLRACE_BROKER": broker,
            "MILLRACE_DATABASE_URL": database_url,
            "MILLRACE_OBJECT_STORE": object_store_url,
            "MILLRACE_PROJECT": str(project_dir),
            "MILLRACE_FEATURES_PORT": str(port),
            "MILLRACE_FEATURES_DATA_DIR": str(data_dir),
            "MILLRACE_FEATURES_APP_ID": group or f"features-it-{port}",
            **(env or {}),
        },
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )


def base_url(spec: ProcessSpec) -> str:
    return f"http://127.0.0.1:{spec.env['MILLRACE_FEATURES_PORT']}"


def factory_raw(
    count: int, *, seed: int, machines: int = 20, tag: str = ""
) -> list[dict[str, Any]]:
    """``count`` raw records of the factory simulator; with ``tag``, each with an event id."""
    records = [
        {"dataset": "machines", **r}
        for r in take(factory_records(seed=seed, machines=machines), count)
    ]
    if tag:
        records = [{**r, "event_id": f"{tag}-{i}"} for i, r in enumerate(records)]
    return records


def load_factory(broker: str, database_url: str, *, count: int, total: int, seed: int) -> None:
    """``count`` factory records (4 machines, both labels in train and holdout) to ``raw``
    with a plain client; returns once the offline store holds ``total`` rows."""
    records = factory_raw(count, seed=seed, machines=4)
    produce_plain(
        broker,
        RAW,
        [orjson.dumps(r) for r in records],
        [r["entity_id"].encode() for r in records],
    )
    wait_until(lambda: count_rows(database_url) >= total, timeout=120, what=f"{total} feature rows")


def expected_features(
    project_dir: Path, records: list[dict[str, Any]]
) -> dict[str, dict[str, float]]:
    """What an uninterrupted worker computes: windows depend only on each entity's order."""
    project = load_project(project_dir)
    engine = FeatureEngine(project)
    expected = {}
    for offset, record in enumerate(records):
        message = RawMessage(value=orjson.dumps(record), topic="raw", partition=0, offset=offset)
        for row in engine.rows([event_of(project, message)]):
            expected[row.event_id] = row.features
    return expected


def stored_features(database_url: str) -> dict[str, dict[str, float]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(offline_rows.c.event_id, offline_rows.c.features))
            return {row.event_id: row.features for row in rows}
    finally:
        engine.dispose()


def count_rows(database_url: str, table: sa.Table = offline_rows) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
    finally:
        engine.dispose()
