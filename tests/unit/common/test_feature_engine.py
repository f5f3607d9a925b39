"""Point-in-time windows and the raw → feature-row pipeline, without a broker."""

from __future__ import annotations

import math

import orjson
import pytest
from millrace_common.project import load_project
from millrace_common.windows import add_reading, compute
from millrace_features.pipeline import RawMessage, Rejected, decode, rows_for


@pytest.fixture
def project(project_dir):  # type: ignore[no-untyped-def]
    return load_project(project_dir)


def _message(value: dict | bytes, offset: int = 0) -> RawMessage:  # type: ignore[type-arg]
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return RawMessage(value=raw, topic="raw", partition=0, offset=offset)


def _record(ts: str, temperature: float, **extra: object) -> dict:  # type: ignore[type-arg]
    return {
        "dataset": "machines",
        "entity_id": "m-1",
        "ts": ts,
        "temperature": temperature,
        "vibration": 0.2,
        "pressure": 3.0,
        "speed": 1500.0,
        **extra,
    }


def test_a_row_holds_only_what_was_known_at_its_event_time(project) -> None:  # type: ignore[no-untyped-def]
    windows: dict = {}  # type: ignore[type-arg]
    late = _record("2026-01-01T00:05:00Z", 90.0)
    early = _record("2026-01-01T00:01:00Z", 60.0)
    for offset, data in enumerate((late, early)):  # out of order on purpose
        message = _message(data, offset)
        rows = rows_for(project, decode(project, message), message, windows)
    features = rows[0].row.features
    assert features["temperature_mean_10m"] == 60.0  # the later reading is not mixed in
    assert features["readings_10m"] == 1.0


def test_aggregates_over_the_window_and_drop_old_readings(project) -> None:  # type: ignore[no-untyped-def]
    fs = project.feature_set("machine_health")
    window: list = []  # type: ignore[type-arg]
    for i, (t, temp) in enumerate([(0, 60.0), (60, 70.0), (120, 80.0), (2000, 100.0)]):
        window = add_reading(
            window,
            [t, f"e{i}", {"temperature": temp, "vibration": 0.1, "speed": 1.0 * i}],
            keep_seconds=1200,
        )
    assert [r[1] for r in window] == ["e3"]  # older than twice the window: gone
    window = []
    for i, temp in enumerate((60.0, 70.0, 80.0)):
        window = add_reading(
            window,
            [i * 60, f"e{i}", {"temperature": temp, "vibration": temp, "speed": temp}],
            keep_seconds=1200,
        )
    features = compute(fs, window, as_of=120)
    assert features["temperature_max_10m"] == 80.0
    assert features["speed_last"] == 80.0
    assert math.isclose(features["vibration_std_10m"], math.sqrt(200 / 3))


def test_a_replayed_event_is_not_counted_twice(project) -> None:  # type: ignore[no-untyped-def]
    windows: dict = {}  # type: ignore[type-arg]
    message = _message(_record("2026-01-01T00:00:00Z", 60.0, event_id="same"))
    first = rows_for(project, decode(project, message), message, windows)
    again = rows_for(project, decode(project, message), message, windows)
    assert first[0].row == again[0].row
    assert again[0].row.features["readings_10m"] == 1.0


def test_a_record_without_event_id_gets_its_position(project) -> None:  # type: ignore[no-untyped-def]
    message = RawMessage(
        value=orjson.dumps(_record("2026-01-01T00:00:00Z", 60.0)),
        topic="raw",
        partition=3,
        offset=42,
    )
    rows = rows_for(project, decode(project, message), message, {})
    assert rows[0].row.event_id == "raw-3-42"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (orjson.dumps({"dataset": "nope", "entity_id": "x"}), "unknown dataset"),
        (orjson.dumps(_record("2026-01-01T00:00:00Z", "hot")), "temperature"),  # type: ignore[arg-type]
    ],
)
def test_undecodable_records_are_rejected_with_a_reason(project, value, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Rejected, match=reason):
        decode(project, _message(value))
