"""The connectors' shared reader and the event ids they give records."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from millrace_common.errors import InvalidInput
from millrace_common.objectstore import MemoryStore
from millrace_common.project import Dataset
from millrace_ingest.connectors.event_ids import (
    s3_event_id,
    sql_event_id,
    sql_row_event_id,
    with_event_id,
)
from millrace_ingest.connectors.files import file_items
from millrace_ingest.connectors.reader import Unreadable, format_of, read_stream
from millrace_ingest.connectors.s3 import S3Location, s3_items

MACHINES = Dataset(
    name="machines",
    fields={"temperature": "float", "vibration": "float"},
    labels={"failure_within_1h": "int"},
)
CSV = (
    b"entity_id,ts,temperature,vibration,failure_within_1h\n"
    b"m-1,2026-01-01T00:00:00Z,70.5,0.2,0\n"
    b'"m-2",2026-01-01T00:01:00Z,71,0.3,\n'
)
JSONL = (
    b'{"entity_id": "m-1", "ts": "2026-01-01T00:00:00Z", "temperature": 70.5}\n'
    b"\n"
    b'{"entity_id": "m-2"}\n'
)


def read(data: bytes, name: str) -> list[tuple[int, dict]]:  # type: ignore[type-arg]
    found = format_of(name)
    assert found is not None
    kind, gzipped = found
    return list(
        read_stream(io.BytesIO(data), kind=kind, gzipped=gzipped, dataset=MACHINES, where=name)
    )


def test_formats_by_name() -> None:
    assert format_of("a/b.CSV") == ("csv", False)
    assert format_of("b.jsonl.gz") == ("jsonl", True)
    assert format_of("b.ndjson") == ("jsonl", False)
    assert format_of("b.parquet") == ("parquet", False)
    assert format_of("b.parquet.gz") is None and format_of("b.gz") is None


def test_csv_fields_typed_by_the_dataset_and_empty_cells_left_out() -> None:
    assert read(CSV, "r.csv") == [
        (2, {"entity_id": "m-1", "ts": "2026-01-01T00:00:00Z", "temperature": 70.5,
             "vibration": 0.2, "failure_within_1h": 0}),
        (3, {"entity_id": "m-2", "ts": "2026-01-01T00:01:00Z", "temperature": 71.0,
             "vibration": 0.3}),
    ]  # fmt: skip


def test_json_lines_skip_blank_lines_and_keep_numbering() -> None:
    assert [n for n, _ in read(JSONL, "r.jsonl")] == [1, 3]


def test_gzip_reads_like_the_plain_file() -> None:
    assert read(gzip.compress(CSV), "r.csv.gz") == read(CSV, "r.csv")
    assert read(gzip.compress(JSONL), "r.jsonl.gz") == read(JSONL, "r.jsonl")


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (CSV + b"m-3,2026-01-01T00:02:00Z,hot,0.1,0\n", "r.csv",
         "temperature: expected float, got 'hot'"),
        (JSONL + b"{nope\n", "r.jsonl", "not JSON"),
        (JSONL + b"[1, 2]\n", "r.jsonl", "expected a JSON object"),
        (CSV + b"m-3,2026-01-01T00:02:00Z,1,2,0,extra\n", "r.csv",
         "more values than header columns"),
    ],
)  # fmt: skip
def test_a_bad_line_is_named_and_the_stream_read_on(data: bytes, name: str, reason: str) -> None:
    found = read(data + (CSV if name.endswith("csv") else JSONL).split(b"\n", 1)[1], name)
    [(line, bad)] = [(n, r) for n, r in found if isinstance(r, Unreadable)]
    assert line == 4 and bad.reason.startswith(reason) and bad.raw
    assert max(n for n, _ in found) > 4  # the lines after it are read too


def test_an_unreadable_stream_is_named() -> None:
    with pytest.raises(InvalidInput) as caught:
        read(b"not gzip at all", "r.csv.gz")
    assert caught.value.message.startswith("r.csv.gz: unreadable")


def test_file_event_ids_come_from_content_and_line_not_path(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "sub" / "renamed.csv"
    second.parent.mkdir()
    first.write_bytes(CSV)
    second.write_bytes(CSV)
    ids = [i.record["event_id"] for i in file_items(first, MACHINES)]
    assert ids == [i.record["event_id"] for i in file_items(second, MACHINES)]
    assert len(set(ids)) == 2 and all(i.startswith("file-") for i in ids)
    assert [i.where for i in file_items(first, MACHINES)] == [f"{first} line 2", f"{first} line 3"]
    second.write_bytes(CSV.replace(b"70.5", b"70.6"))
    assert set(ids).isdisjoint(i.record["event_id"] for i in file_items(second, MACHINES))


def test_a_record_keeps_its_own_event_id(tmp_path: Path) -> None:
    path = tmp_path / "own.jsonl"
    path.write_bytes(b'{"entity_id": "m-1", "event_id": "mine"}\n{"entity_id": "m-2"}\n')
    ids = [i.record["event_id"] for i in file_items(path, MACHINES)]
    assert ids[0] == "mine" and ids[1].startswith("file-")
    assert with_event_id({"event_id": ""}, "x") == {"event_id": "x"}


def test_unsupported_or_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.xlsx").write_bytes(b"")
    with pytest.raises(InvalidInput, match="unsupported file type"):
        list(file_items(tmp_path / "x.xlsx", MACHINES))
    with pytest.raises(InvalidInput, match="no such file"):
        list(file_items(tmp_path / "nope.csv", MACHINES))


def test_s3_ids_follow_bucket_key_version_and_line() -> None:
    base = {"bucket": "b", "key": "k.csv", "etag": "e1", "size": 10, "line": 2}
    same = s3_event_id(**base)  # type: ignore[arg-type]
    assert same == s3_event_id(**base)  # type: ignore[arg-type]
    for change in ({"bucket": "c"}, {"key": "j.csv"}, {"etag": "e2"}, {"size": 11}, {"line": 3}):
        assert s3_event_id(**{**base, **change}) != same  # type: ignore[arg-type]


def test_s3_items_in_key_order_through_the_reader() -> None:
    store = MemoryStore()
    store.put("in/b.jsonl.gz", gzip.compress(JSONL))
    store.put("in/a.csv", CSV)
    store.put("in/readme.txt", b"skip me")
    store.put("other/c.csv", CSV)
    items = list(s3_items(store, S3Location.parse("s3://bkt/in/"), MACHINES))
    assert [i.where for i in items] == [
        "s3://bkt/in/a.csv line 2",
        "s3://bkt/in/a.csv line 3",
        "s3://bkt/in/b.jsonl.gz line 1",
        "s3://bkt/in/b.jsonl.gz line 3",
    ]
    info = store.stat("in/a.csv")
    assert items[0].record["event_id"] == s3_event_id(
        bucket="bkt", key="in/a.csv", etag=info.etag, size=info.size, line=2
    )
    assert items == list(s3_items(store, S3Location.parse("s3://bkt/in/"), MACHINES))


def test_sql_ids_from_source_and_key_or_the_whole_row() -> None:
    assert sql_event_id(source="t", key=5) == sql_event_id(source="t", key=5)
    assert sql_event_id(source="t", key=5) != sql_event_id(source="t", key="5")
    assert sql_event_id(source="t", key=5) != sql_event_id(source="u", key=5)
    # polled by a cursor column: an update past the cursor is a new record
    first = sql_event_id(source="t", key=5, version="2026-11-30T08:00:00")
    assert first == sql_event_id(source="t", key=5, version="2026-11-30T08:00:00")
    assert first != sql_event_id(source="t", key=5, version="2026-11-30T09:00:00")
    row = {"a": 1, "b": "x"}
    assert sql_row_event_id(source="t", row=row) == sql_row_event_id(
        source="t", row={"b": "x", "a": 1}
    )
    assert sql_row_event_id(source="t", row=row) != sql_row_event_id(
        source="t", row={**row, "a": 2}
    )


def test_parquet_rows_keep_their_types_and_number_by_row(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "readings.parquet"
    table = pa.table(
        {
            "entity_id": ["m-1", "m-2", "m-3"],
            "ts": pa.array(
                [datetime(2026, 11, 30, 8, i, tzinfo=UTC) for i in range(3)],
                type=pa.timestamp("us", tz="UTC"),
            ),
            "temperature": [71.5, None, 70.0],
            "failure_within_1h": pa.array([0, 1, None], type=pa.int64()),
        }
    )
    pq.write_table(table, path, row_group_size=2)  # two row groups, numbering runs on
    items = list(file_items(path, MACHINES))
    assert [i.where for i in items] == [f"{path} row {n}" for n in (1, 2, 3)]
    first, second, third = (i.record for i in items)
    assert first["ts"] == "2026-11-30T08:00:00+00:00" and first["temperature"] == 71.5
    assert "temperature" not in second and second["failure_within_1h"] == 1
    assert "failure_within_1h" not in third
    assert len({i.record["event_id"] for i in items}) == 3


def test_an_unreadable_parquet_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(InvalidInput, match="broken.parquet: unreadable"):
        list(file_items(path, MACHINES))
