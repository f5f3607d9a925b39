"""``agg: latest``: the newest value of a field ever seen, with no window: it outlives the
window the other features keep (their readings are trimmed, the value is not), and it
comes back after a restart, from the offline store at the centre and from the site's own
file at an edge agent."""

from __future__ import annotations

from pathlib import Path

from millrace_common.db import make_engine, session_factory
from millrace_common.feature_engine import Event, FeatureEngine
from millrace_common.feature_store import metadata
from millrace_common.project import Project, load_project
from millrace_common.records import validate_record
from millrace_features.adapters.store import FeatureStore

SPEC = """
datasets:
  customers:
    entity: customer_id
    time: as_of
    fields: {plan_price: float, calls: int}
    optional: [plan_price]
feature_sets:
  profile:
    dataset: customers
    features:
      - {name: price, field: plan_price, agg: latest}
      - {name: calls_2d, field: calls, agg: sum, window: 2d}
"""


def project(tmp: Path) -> Project:
    (tmp / "millrace.yaml").write_text(SPEC)
    return load_project(tmp)


def event(project: Project, day: int, **values: object) -> Event:
    record = {"customer_id": "c", "as_of": f"2026-10-{day:02d}T00:00:00Z", "calls": 1, **values}
    return Event(validate_record(project.dataset("customers"), record), f"e{day}")


def test_the_latest_value_outlives_the_window(tmp_path: Path) -> None:
    spec = project(tmp_path)
    engine = FeatureEngine(spec)
    rows = engine.rows(
        [
            event(spec, 1, plan_price=30.0),
            event(spec, 9),  # the 2d window (kept 4d) has long dropped day 1's reading
            event(spec, 20, plan_price=45.0),
            event(spec, 28),
        ]
    )
    assert [r.features["price"] for r in rows] == [30.0, 30.0, 45.0, 45.0]
    assert [r.features["calls_2d"] for r in rows] == [1.0, 1.0, 1.0, 1.0]
    assert spec.feature_set("profile").max_window_seconds == 2 * 86400


def test_the_latest_value_comes_back_from_the_offline_store(tmp_path: Path) -> None:
    spec = project(tmp_path)
    engine_db = make_engine(f"sqlite:///{tmp_path}/millrace.db")
    metadata.create_all(engine_db)
    store = FeatureStore(session_factory(engine_db))
    first = FeatureEngine(spec, source=store)
    store.write(first.rows([event(spec, 1, plan_price=30.0), event(spec, 9), event(spec, 12)]))
    restarted = FeatureEngine(spec, source=store)  # nothing in memory: a new worker
    [row] = restarted.rows([event(spec, 13)])
    assert row.features["price"] == 30.0  # from day 1, ten days before the kept readings
    assert row.features["calls_2d"] == 2.0  # days 12 and 13: the window as it was


async def test_the_latest_value_comes_back_from_the_site_s_file(tmp_path: Path) -> None:
    """At an edge agent the readings are pruned to the window as they are written; the
    newest one of a ``latest`` field is kept, so a reopened agent still has it."""
    from millrace_edge_agent.adapters.queue import Queues
    from millrace_edge_agent.intake import RecordIntake
    from millrace_edge_agent.site_features import SiteFeatures

    spec = project(tmp_path)

    def site() -> tuple[Queues, RecordIntake]:
        queues = Queues.open(
            tmp_path / "queue.sqlite3", max_rows=1000, max_age=365 * 86400.0, policy="reject-new"
        )
        features = SiteFeatures(project=spec, tables=queues.features, max_windows=100)
        return queues, RecordIntake(queue=queues.records, project=spec, features=features)

    def record(day: int, **values: object) -> dict[str, object]:
        return {"customer_id": "c", "as_of": f"2026-10-{day:02d}T00:00:00Z", "calls": 1} | values

    queues, intake = site()
    await intake.accept(dataset="customers", records=[record(1, plan_price=30.0), record(8)])
    await intake.accept(dataset="customers", records=[record(12)])
    queues.close()
    queues, intake = site()
    accepted = await intake.accept(dataset="customers", records=[record(13)])
    assert [r.features["price"] for r in accepted.rows] == [30.0]
    assert [r.features["calls_2d"] for r in accepted.rows] == [2.0]
    _online, kept = queues.features.sizes()
    assert kept == 3  # day 1 (the latest price), 12 and 13: day 8 was pruned
    queues.close()
