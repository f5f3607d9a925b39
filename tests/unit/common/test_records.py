import pytest
from millrace_common.project import load_project
from millrace_common.records import RecordInvalid, validate_record


@pytest.fixture
def machines(project_dir):  # type: ignore[no-untyped-def]
    return load_project(project_dir).dataset("machines")


def test_valid_record_is_typed(machines) -> None:  # type: ignore[no-untyped-def]
    record = validate_record(
        machines,
        {
            "entity_id": "m-1",
            "ts": "2026-01-01T00:00:00Z",
            "temperature": 70,
            "vibration": 0.1,
            "pressure": 3.0,
            "speed": 1200.0,
            "failure_within_1h": 0,
        },
    )
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
