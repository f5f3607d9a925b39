"""The SQL connector on a SQLite file: JSON values, the cursor kept only for acknowledged
rows, and rows sharing a since value never split between two runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa
from millrace_common.errors import InvalidInput
from millrace_common.project import Dataset
from millrace_ingest.connectors.sender import Item
from millrace_ingest.connectors.sql import (
    Cursor,
    CursorState,
    SqlRun,
    SqlSource,
    json_value,
    row_record,
    with_checkpoints,
)

MACHINES = Dataset(
    name="machines", fields={"temperature": "float"}, labels={"failure_within_1h": "int"}
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_values_become_json_types() -> None:
    assert json_value(datetime(2026, 1, 1, 12, 30, tzinfo=UTC)) == "2026-01-01T12:30:00+00:00"
    assert json_value(date(2026, 1, 2)) == "2026-01-02"
    assert json_value(Decimal("71.25")) == 71.25
    assert json_value(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert json_value(timedelta(minutes=1)) == 60.0
    assert json_value(b"\x01\xff") == "01ff"
    assert json_value({"a": [Decimal("1.5")]}) == {"a": [1.5]}


def test_a_row_becomes_a_record() -> None:
    row = {
        "id": 7,
        "entity_id": 17,
        "ts": T0,
        "temperature": Decimal("70.5"),
        "failure_within_1h": Decimal("1"),
        "note": None,
    }
    assert row_record(row, dataset=MACHINES, skip={"id"}) == {
        "entity_id": "17",
        "ts": "2026-01-01T00:00:00+00:00",
        "temperature": 70.5,
        "failure_within_1h": 1,
    }


def test_unkeyed_cursor_never_splits_a_since_value() -> None:
    rows = [{"ts": t} for t in (1, 2, 2, 2, 3)]
    assert [c for _, c in with_checkpoints(rows, since="ts", key=None)] == [
        Cursor(1),
        Cursor(1),
        Cursor(1),
        Cursor(2),
        Cursor(3),
    ]
    keyed = [{"ts": 2, "id": i} for i in (4, 5)]
    assert [c for _, c in with_checkpoints(keyed, since="ts", key="id")] == [
        Cursor(2, 4),
        Cursor(2, 5),
    ]


def test_state_round_trips_typed_values(tmp_path: Path) -> None:
    state = CursorState(tmp_path / "s" / "state.json")
    one, two = {"url": "u", "source": "t"}, {"url": "u", "source": "q"}
    state.save(one, Cursor(T0, Decimal("1.5")))
    state.save(two, Cursor(date(2026, 1, 1)))
    state.save(one, Cursor(T0 + timedelta(hours=1), 3))
    assert state.load(one) == Cursor(T0 + timedelta(hours=1), 3)
    assert state.load(two) == Cursor(date(2026, 1, 1))
    assert state.load({"url": "u", "source": "x"}) is None


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'plant.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE readings (id INTEGER PRIMARY KEY, entity_id TEXT, ts DATETIME,"
            " temperature NUMERIC(6, 2), failure_within_1h INTEGER, operator TEXT)"
        )
        insert(conn, range(1, 6))
    engine.dispose()
    return url


def insert(conn: sa.Connection, ids: range, *, at: datetime | None = None) -> None:
    for i in ids:
        conn.execute(
            sa.text("INSERT INTO readings VALUES (:id, :e, :ts, :t, 0, 'ann')"),
            {"id": i, "e": f"m-{i % 2}", "ts": (at or T0 + timedelta(minutes=i)), "t": 70 + i},
        )


def run(url: str, state: CursorState, **kwargs: str) -> tuple[SqlRun, list[Item]]:
    sql_run = SqlRun(source=SqlSource(url, **kwargs), dataset=MACHINES, state=state, batch=2)
    items = list(sql_run.items())
    return sql_run, items


def test_table_rows_are_read_incrementally_once_acknowledged(
    sqlite_url: str, tmp_path: Path
) -> None:
    state = CursorState(tmp_path / "state.json")
    first, items = run(sqlite_url, state, table="readings", since_column="ts", key_column="id")
    # the table's other columns are not the dataset's: left out; the key is bookkeeping
    assert items[0].record.keys() == {
        "entity_id", "ts", "temperature", "failure_within_1h", "event_id"
    }  # fmt: skip
    assert [i.where for i in items[:2]] == ["table readings row id=1", "table readings row id=2"]
    first.acknowledge(items[:3])
    _, again = run(sqlite_url, state, table="readings", since_column="ts", key_column="id")
    assert [i.record["event_id"] for i in again] == [i.record["event_id"] for i in items[3:]]
    first.acknowledge(items[3:])
    assert run(sqlite_url, state, table="readings", since_column="ts", key_column="id")[1] == []


def test_query_without_key_keeps_ties_together(sqlite_url: str, tmp_path: Path) -> None:
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        insert(conn, range(6, 9), at=T0 + timedelta(minutes=10))
    engine.dispose()
    state = CursorState(tmp_path / "state.json")
    query = "SELECT entity_id, ts, temperature FROM readings;"
    first, items = run(sqlite_url, state, query=query, since_column="ts")
    assert len(items) == 8
    first.acknowledge(items[:6])  # one of the three rows at minute 10 acknowledged
    _, rest = run(sqlite_url, state, query=query, since_column="ts")
    assert [i.record["event_id"] for i in rest] == [i.record["event_id"] for i in items[5:]]


def test_unknown_table_column_and_database(sqlite_url: str, tmp_path: Path) -> None:
    state = CursorState(tmp_path / "state.json")
    with pytest.raises(InvalidInput, match="no table 'nope'"):
        run(sqlite_url, state, table="nope")
    with pytest.raises(InvalidInput, match="table readings has no column 'seen_at'"):
        run(sqlite_url, state, table="readings", since_column="seen_at")
    with pytest.raises(InvalidInput, match="query has no column 'id'"):
        run(sqlite_url, state, query="SELECT entity_id, ts FROM readings", key_column="id")
    with pytest.raises(InvalidInput, match="query: no such table: other"):
        run(sqlite_url, state, query="SELECT * FROM other")
    with pytest.raises(InvalidInput, match="no SQLite database file"):
        run(f"sqlite:///{tmp_path / 'missing.db'}", state, table="readings")
    with pytest.raises(InvalidInput, match="either --table or --query"):
        SqlSource(sqlite_url)


def test_the_password_never_leaves() -> None:
    source = SqlSource("postgresql://ann:s3cret@db.example:5432/plant", table="t")
    assert "s3cret" not in source.safe_url and "ann@db.example" in source.safe_url
