import pytest
from millrace_common.project import load_project
from millrace_common.records import RecordInvalid, validate_record

GOOD = {
    "entity_id": "m-1",
    "ts": "2026-01-01T00:00:00Z",
    "temperature": 70,
    "vibration": 0.1,
    "pressure": 3.0,
    "speed": 1200.0,
    "failure_within_1h": 0,
}


@pytest.fixture
def machines(project_dir):  # type: ignore[no-untyped-def]
    return load_project(project_dir).dataset("machines")


def test_valid_record_is_typed(machines) -> None:  # type: ignore[no-untyped-def]
    record = validate_record(machines, GOOD)
    assert record.values["temperature"] == 70.0
    assert record.labels == {"failure_within_1h": 0}


def test_every_bad_field_is_named(machines) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RecordInvalid) as info:
        validate_record(
            machines,
            {
                "entity_id": "m-1",
                "ts": "yesterday",
                "temperature": "hot",
                "vibration": 0.1,
                "pressure": 3.0,
                "colour": "red",
            },
        )
    fields = {e.field for e in info.value.errors}
    assert fields == {"ts", "temperature", "speed", "colour"}


VARIANTS = [
    {},
    {"ts": "2026-01-01T00:00:00"},  # naive: UTC
    {"ts": 1767225600},  # epoch seconds: the checked path only
    {"ts": "yesterday"},
    {"ts": None},
    {"entity_id": ""},
    {"entity_id": 7},
    {"temperature": True},  # a bool is not a number here
    {"temperature": "70"},
    {"temperature": None},
    {"failure_within_1h": None},  # a label may be missing
    {"failure_within_1h": 1.0},  # an int label given as a float
    {"event_id": "e-1"},
    {"event_id": 5},
    {"colour": "red"},
    {"dataset": "machines"},
]


@pytest.mark.parametrize("change", VARIANTS)
def test_the_fast_path_takes_exactly_what_the_checked_path_takes(machines, change) -> None:  # type: ignore[no-untyped-def]
    from millrace_common.records import _checked, _valid

    data = {k: v for k, v in {**GOOD, **change}.items() if v is not None or k == "ts"}
    fast = _valid(machines, data)
    try:
        checked = _checked(machines, data)
    except RecordInvalid:
        assert fast is None
        return
    assert fast is None or fast == checked
    if not change:
        assert fast is not None  # a plain valid record takes the fast path
