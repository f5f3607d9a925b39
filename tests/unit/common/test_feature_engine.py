"""The feature engine: point-in-time windows, replays, old readings dropped, windows
started from recorded history, and the engine equal to the definition of a point-in-time
feature on shuffled streams."""

from __future__ import annotations

import math
import random
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from millrace_common.contracts import FeatureRowComputed
from millrace_common.feature_engine import Event, FeatureEngine, Reading, Window
from millrace_common.project import FeatureSet, Project, load_project
from millrace_common.records import validate_record
from millrace_common.windows import reduce_values

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def project(project_dir) -> Project:  # type: ignore[no-untyped-def]
    return load_project(project_dir)


def event(
    project: Project, at: float, temperature: float, *, entity: str = "m-1", event_id: str = ""
) -> Event:
    data = {
        "entity_id": entity,
        "ts": (T0 + timedelta(seconds=at)).isoformat(),
        "temperature": temperature,
        "vibration": 0.2,
        "pressure": 3.0,
        "speed": 1500.0,
    }
    record = validate_record(project.dataset("machines"), data)
    return Event(record, event_id or f"e-{entity}-{at}")


def test_a_row_holds_only_what_was_known_at_its_event_time(project: Project) -> None:
    engine = FeatureEngine(project)
    late, early = event(project, 300, 90.0), event(project, 60, 60.0)
    engine.rows([late])
    (row,) = engine.rows([early])  # out of order on purpose
    assert row.features["temperature_mean_10m"] == 60.0  # the later reading is not mixed in
    assert row.features["readings_10m"] == 1.0


def test_aggregates_over_the_window_and_drops_old_readings(project: Project) -> None:
    engine = FeatureEngine(project)
    rows = engine.rows([event(project, i * 60, t) for i, t in enumerate((60.0, 70.0, 80.0))])
    features = rows[-1].features
    assert features["temperature_max_10m"] == 80.0
    assert features["speed_last"] == 1500.0
    assert math.isclose(features["temperature_mean_10m"], 70.0)
    window = Window(["temperature"])
    for i, at in enumerate((0, 60, 120, 2000)):
        window.add(Reading(at, f"e{i}", {"temperature": 1.0}), keep_seconds=1200)
    assert [r.event_id for r in window.readings] == ["e3"]  # older than twice the window


def test_a_replayed_event_is_not_counted_twice(project: Project) -> None:
    engine = FeatureEngine(project)
    (first,) = engine.rows([event(project, 0, 60.0, event_id="same")])
    (again,) = engine.rows([event(project, 0, 60.0, event_id="same")])
    assert first == again
    assert again.features["readings_10m"] == 1.0


def test_the_json_is_the_feature_row_contract(project: Project) -> None:
    (row,) = FeatureEngine(project).rows([event(project, 0, 60.0)])
    parsed = FeatureRowComputed.model_validate_json(row.to_json())
    assert parsed.event_time == T0 and parsed.features == row.features
    assert orjson.loads(row.to_json())["event_time"] == "2026-01-01T00:00:00Z"


class Recorded:
    """A source holding readings recorded before (what a restart finds in the store)."""

    def __init__(self, readings: dict[str, list[Reading]]) -> None:
        self.readings = readings
        self.asked: list[set[str]] = []

    def load(
        self, feature_set: FeatureSet, entities: Collection[str], *, keep_seconds: float
    ) -> dict[str, list[Reading]]:
        self.asked.append(set(entities))
        return {e: self.readings[e] for e in entities if e in self.readings}


def test_a_window_starts_from_what_was_recorded_and_is_loaded_once(project: Project) -> None:
    start = T0.timestamp()
    before = [Reading(start + i * 60, f"old-{i}", {"temperature": 50.0 + i}) for i in range(3)]
    source = Recorded({"m-1": before})
    engine = FeatureEngine(project, source=source)
    (row,) = engine.rows([event(project, 180, 53.0)])
    engine.rows([event(project, 240, 54.0)])
    assert row.features["readings_10m"] == 4.0
    assert row.features["temperature_mean_10m"] == pytest.approx(51.5)
    assert source.asked == [{"m-1"}]
    engine.forget()  # a rebalance: windows are loaded again from the source
    engine.rows([event(project, 300, 55.0)])
    assert source.asked == [{"m-1"}, {"m-1"}]


def test_at_most_max_windows_stay_in_memory(project: Project) -> None:
    source = Recorded({})
    engine = FeatureEngine(project, source=source, max_windows=2)
    for entity in ("a", "b", "c", "a"):
        engine.rows([event(project, 0, 1.0, entity=entity)])
    assert source.asked == [{"a"}, {"b"}, {"c"}, {"a"}]  # "a" was the least recently used


def definition(fs: FeatureSet, seen: list[tuple[float, str, float]], as_of: float) -> dict:  # type: ignore[type-arg]
    """A point-in-time feature, straight from its definition: every reading seen so far
    with ``as_of - window < t <= as_of``, newest dropped only past twice the window."""
    newest = max(t for t, _, _ in seen)
    kept = sorted((t, i, v) for t, i, v in set(seen) if t >= newest - 2 * fs.max_window_seconds)
    out = {}
    for spec in fs.features:
        values = [v for t, _, v in kept if as_of - spec.window_seconds < t <= as_of]
        out[spec.name] = reduce_values(spec.agg, values)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_the_engine_equals_the_definition_on_shuffled_streams(project: Project, seed: int) -> None:
    rng = random.Random(seed)
    fs = project.feature_set("machine_health")
    times = sorted(rng.uniform(0, 3600) for _ in range(300))
    stream = [(t, f"e{i}", round(rng.gauss(70, 5), 3)) for i, t in enumerate(times)]
    stream = [
        s if rng.random() > 0.2 else stream[max(0, i - rng.randint(1, 30))]
        for i, s in enumerate(stream)
    ]
    rng.shuffle(stream)  # late, early and repeated events
    engine = FeatureEngine(project)
    seen: list[tuple[float, str, float]] = []
    for t, event_id, temperature in stream:
        seen.append((t, event_id, temperature))
        (row,) = engine.rows([event(project, t, temperature, event_id=event_id)])
        expected = definition(fs, seen, t)
        for name in ("temperature_mean_10m", "temperature_max_10m", "readings_10m"):
            assert row.features[name] == pytest.approx(expected[name], abs=1e-9), name


def test_a_bool_field_and_a_text_field_give_float_features(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Features are floats whatever the field: a bool's last and max are 1.0 or 0.0 (as
    JSON 1.0, not true), a text field is counted."""
    (tmp_path / "millrace.yaml").write_text(
        """
datasets:
  customers:
    entity: customer_id
    time: as_of
    fields: {paperless: bool, contract: str}
feature_sets:
  profile:
    dataset: customers
    features:
      - {name: paperless_last, field: paperless, agg: last, window: 30d}
      - {name: paperless_share, field: paperless, agg: mean, window: 30d}
      - {name: paperless_ever, field: paperless, agg: max, window: 30d}
      - {name: contracts_seen, field: contract, agg: count, window: 30d}
"""
    )
    project = load_project(tmp_path)
    dataset = project.dataset("customers")
    engine = FeatureEngine(project)
    events = [
        Event(
            validate_record(
                dataset,
                {
                    "customer_id": "c",
                    "as_of": f"2026-11-0{day}T00:00:00Z",
                    "paperless": value,
                    "contract": "month-to-month",
                },
            ),
            f"e{day}",
        )
        for day, value in ((1, True), (2, False))
    ]
    last = engine.rows(events)[-1]
    assert last.features == {
        "paperless_last": 0.0,
        "paperless_share": 0.5,
        "paperless_ever": 1.0,
        "contracts_seen": 2.0,
    }
    assert all(type(v) is float for v in last.features.values())
    FeatureRowComputed.model_validate_json(last.to_json())


TABULAR = """
datasets:
  customers:
    entity: customer_id
    time: as_of
    fields: {charges: float, calls: int, contract: str, note: str}
    optional: [charges, calls, note]
feature_sets:
  profile:
    dataset: customers
    features:
      - {name: charges_last, field: charges, agg: last, window: 14d}
      - {name: charges_sum, field: charges, agg: sum, window: 14d}
      - {name: calls_sum, field: calls, agg: sum, window: 14d}
      - {name: monthly_contracts, field: contract, agg: count, equals: month-to-month, window: 30d}
      - {name: days_since_note, field: note, agg: since_last, window: 90d}
      - {name: charge_per_call, ratio: [charges_sum, calls_sum]}
"""


def test_tabular_features_and_missing_values(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Category counts, the time since the last reading of a field, ratios; an aggregate
    of nothing is missing (null), a count or a sum of nothing is 0, a ratio over 0 is
    missing."""
    (tmp_path / "millrace.yaml").write_text(TABULAR)
    project = load_project(tmp_path)
    dataset = project.dataset("customers")
    engine = FeatureEngine(project)

    def at(day: int, **values: object) -> Event:
        record = {"customer_id": "c", "as_of": f"2026-11-{day:02d}T00:00:00Z", **values}
        return Event(validate_record(dataset, record), f"e{day}")

    first, second, third, fourth = engine.rows(
        [
            at(1, contract="month-to-month", note="called about the bill"),
            at(3, charges=30.0, calls=2, contract="one-year"),
            at(5, charges=10.0, calls=0, contract="month-to-month", note="moved"),
            at(25, contract="two-year"),  # the charges of days 3 and 5 left the 14d window
        ]
    )
    assert first.features == {
        "charges_last": None,  # no charges yet: missing, not 0
        "charges_sum": 0.0,
        "calls_sum": 0.0,
        "monthly_contracts": 1.0,
        "days_since_note": None,  # no earlier note
        "charge_per_call": None,  # 0 / 0
    }
    assert second.features["days_since_note"] == 2 * 86400  # since day 1's note
    assert second.features["charge_per_call"] == 15.0
    assert third.features["monthly_contracts"] == 2.0
    assert third.features["days_since_note"] == 4 * 86400  # day 3 had no note: day 1's
    assert third.features["charge_per_call"] == 20.0
    assert fourth.features["charges_last"] is None and fourth.features["charges_sum"] == 0.0
    assert fourth.features["days_since_note"] == 20 * 86400
    contract = FeatureRowComputed.model_validate_json(first.to_json())
    assert contract.features["charges_last"] is None
