"""``millrace ingest s3|sql|file`` as a user runs them: the CLI as a process, a real ingest on
the Tansu broker, objects over the S3 protocol (moto), tables in Postgres and SQLite; what
arrived on ``raw`` is read back. A re-run sends the same event ids, and features keeps one
row per event id."""

from __future__ import annotations

import gzip
import secrets
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from millrace_cli.processes import (
    Supervisor,
    free_port,
    script,
    tansu_spec,
    wait_until,
)
from millrace_common.contracts import FEATURES, RAW
from millrace_common.db import make_engine
from millrace_common.objectstore import ObjectStore, open_store

from tests.support.features import count_rows, features_process
from tests.support.ingest import start_ingest
from tests.support.kafka import at_least, read_topic, value_of, values

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def started_ingest(supervisor: Supervisor, broker: str, project_dir: Path) -> tuple[str, str]:
    """The centre's ingest as a process of its own: its name and base URL."""
    name = f"ingest-conn-{secrets.token_hex(3)}"
    port = start_ingest(supervisor, name=name, broker=broker, project_dir=project_dir)
    return name, f"http://127.0.0.1:{port}"


def millrace(*args: str, ingest: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script("millrace"), "ingest", *args, "--url", ingest],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def succeeded(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, run.stderr
    return run.stdout


def failed(run: subprocess.CompletedProcess[str]) -> str:
    """The one-line error of a run that exits 1 without a traceback."""
    assert run.returncode == 1, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    return lines[0]


async def read_raw(broker: str, want: int, keep: Callable[[dict[str, Any]], bool]) -> list[dict]:  # type: ignore[type-arg]
    """The values on ``raw`` that ``keep`` picks, once ``want`` of them arrived."""
    found = await read_topic(
        broker, RAW, keep=lambda r: keep(value_of(r)), until=at_least(want), what=f"{want} records"
    )
    return values(found)


def tagged(tag: str) -> Callable[[dict[str, Any]], bool]:
    return lambda value: str(value.get("entity_id", "")).startswith(tag)


def in_order_per_entity(values: list[dict[str, Any]]) -> bool:
    """``raw`` is keyed by entity: each entity's records keep the order they were sent in."""
    by_entity: dict[str, list[str]] = {}
    for value in values:
        by_entity.setdefault(value["entity_id"], []).append(value["ts"])
    return all(times == sorted(times) for times in by_entity.values())


def csv_rows(tag: str, count: int, *, start: int = 0, bad: int | None = None) -> bytes:
    lines = ["entity_id,ts,temperature,vibration,pressure,speed,failure_within_1h"]
    for i in range(start, start + count):
        temperature = "hot" if i == bad else f"{70 + i % 7}.5"
        ts = (T0 + timedelta(seconds=i)).isoformat()
        lines.append(f"{tag}-{i % 3},{ts},{temperature},0.2,3.1,1500,{i % 2}")
    return ("\n".join(lines) + "\n").encode()


def jsonl_rows(tag: str, count: int, *, start: int = 0) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "entity_id": f"{tag}-{i % 3}",
                "ts": (T0 + timedelta(seconds=i)).isoformat(),
                "temperature": 70.0 + i,
                "vibration": 0.2,
                "pressure": 3.1,
                "speed": 1500.0,
            }
        )
        + b"\n"
        for i in range(start, start + count)
    )


# -- S3 ---------------------------------------------------------------------------------


@pytest.fixture
def bucket(object_store_url: str) -> tuple[ObjectStore, str, str]:
    """A fresh bucket, its name and the endpoint."""
    store = open_store(object_store_url)
    endpoint = object_store_url.split("endpoint=", 1)[1].split("&", 1)[0]
    return store, object_store_url.split("://", 1)[1].split("?", 1)[0], endpoint


async def test_s3_objects_reach_raw_in_key_order_and_a_rerun_sends_the_same_ids(
    ingest_url: str, broker: str, bucket: tuple[ObjectStore, str, str]
) -> None:
    store, name, endpoint = bucket
    tag = f"s3-{secrets.token_hex(3)}"
    store.put("in/2026/b.jsonl.gz", gzip.compress(jsonl_rows(tag, 4, start=10)))
    store.put("in/2026/a.csv", csv_rows(tag, 5))
    store.put("in/2026/notes.txt", b"not records")
    store.put("elsewhere/c.csv", csv_rows(tag, 3, start=20))
    args = ("s3", f"s3://{name}/in/", "--dataset", "machines", "--endpoint", endpoint)
    out = succeeded(millrace(*args, "--batch", "3", ingest=ingest_url))
    assert "sent 9 records from 2 objects to dataset 'machines', skipped 1" in out
    first = await read_raw(broker, 9, tagged(tag))
    assert len(first) == 9
    # key order: a.csv's lines, then b.jsonl.gz's (raw keeps each entity's order);
    # CSV typed from the dataset's spec
    assert in_order_per_entity(first)
    assert sorted(v["ts"][11:19] for v in first) == [
        f"00:00:{s:02d}" for s in (0, 1, 2, 3, 4, 10, 11, 12, 13)
    ]
    line_2 = next(v for v in first if v["ts"].startswith("2026-01-01T00:00:00"))
    assert line_2["temperature"] == 70.5 and line_2["failure_within_1h"] == 0
    assert all(v["event_id"].startswith("s3-") for v in first)
    succeeded(millrace(*args, ingest=ingest_url))
    both = await read_raw(broker, 18, tagged(tag))
    # each of the 9 ids twice: the re-run sent exactly the first run's ids
    counts = Counter(v["event_id"] for v in both)
    assert counts.keys() == {v["event_id"] for v in first} and set(counts.values()) == {2}


async def test_s3_bad_line_is_named_and_what_came_before_it_is_sent(
    ingest_url: str, broker: str, bucket: tuple[ObjectStore, str, str]
) -> None:
    store, name, endpoint = bucket
    tag = f"s3bad-{secrets.token_hex(3)}"
    store.put("in/a.csv", csv_rows(tag, 4))
    store.put("in/b.csv", csv_rows(tag, 6, start=4, bad=7))  # line 5 of b.csv
    run = millrace(
        "s3", f"s3://{name}/in/", "--dataset", "machines", "--endpoint", endpoint,
        "--batch", "5", ingest=ingest_url,
    )  # fmt: skip
    line = failed(run)
    assert f"s3://{name}/in/b.csv line 5: temperature: expected float, got 'hot'" in line
    assert "(7 records sent before it)" in line
    sent = await read_raw(broker, 7, tagged(tag))
    assert sorted(v["ts"][17:19] for v in sent) == [f"{s:02d}" for s in range(7)]


async def test_refused_records_are_counted_kept_and_the_rest_sent(
    ingest_url: str, broker: str, tmp_path: Path
) -> None:
    """--max-refused: a line the reader cannot type and a record ingest refuses are each
    counted with their reason and written to --refused; every other line arrives once."""
    tag = f"refused-{secrets.token_hex(3)}"
    lines = csv_rows(tag, 10, bad=2).decode().splitlines()
    lines[7] = lines[7].replace(f"{tag}-0,", ",", 1)  # no entity: ingest refuses it
    path = tmp_path / "readings.csv"
    path.write_text("\n".join(lines) + "\n")
    kept = tmp_path / "refused.jsonl"
    run = millrace(
        "file", str(path), "--dataset", "machines", "--batch", "4",
        "--max-refused", "5", "--refused", str(kept), ingest=ingest_url,
    )  # fmt: skip
    said = succeeded(run)
    assert "sent 8 records to dataset 'machines'; refused 2 (" in said, said
    assert "temperature: expected float (1)" in said and f"the first at {path} line 4" in said
    refused = [orjson.loads(line) for line in kept.read_text().splitlines()]
    assert [r["where"] for r in refused] == [f"{path} line 4", f"{path} line 8"]
    assert refused[0]["record"]["temperature"] == "hot"
    assert "entity_id" in refused[1]["reason"]
    sent = await read_raw(broker, 8, tagged(tag))
    assert sorted(int(v["ts"][17:19]) for v in sent) == [0, 1, 3, 4, 5, 7, 8, 9]
    over = millrace(
        "file", str(path), "--dataset", "machines", "--max-refused", "1", ingest=ingest_url
    )  # fmt: skip
    line = failed(over)
    assert f"{path} line 8:" in line and "more than --max-refused 1" in line
    assert "(5 records sent before it, 1 refused)" in line


def test_s3_errors_are_one_line(
    ingest_url: str, bucket: tuple[ObjectStore, str, str], s3_endpoint: str
) -> None:
    store, name, endpoint = bucket
    store.put("in/a.csv", csv_rows("x", 1))
    unknown = failed(
        millrace(
            "s3", f"s3://{name}/in/", "--dataset", "nope", "--endpoint", endpoint, ingest=ingest_url
        )
    )
    assert "nope" in unknown and "(no records sent)" in unknown
    missing = failed(
        millrace("s3", "s3://no-such-bucket-x/in/", "--dataset", "machines",
                 "--endpoint", endpoint, ingest=ingest_url)
    )  # fmt: skip
    assert "no bucket 'no-such-bucket-x'" in missing
    down = failed(
        millrace("s3", f"s3://{name}/in/", "--dataset", "machines",
                 "--endpoint", f"http://127.0.0.1:{free_port()}", ingest=ingest_url)
    )  # fmt: skip
    assert f"cannot list s3://{name}/in/" in down


# -- SQL --------------------------------------------------------------------------------

READINGS = """CREATE TABLE readings (
    id integer PRIMARY KEY, entity_id text, ts timestamptz, temperature numeric(6, 2),
    vibration double precision, pressure real, speed integer, failure_within_1h smallint,
    operator text)"""


def add_readings(engine: sa.Engine, tag: str, ids: range, **overrides: Any) -> None:
    rows = [
        {
            "id": i,
            "entity_id": f"{tag}-{i % 3}",
            "ts": T0 + timedelta(minutes=i),
            "temperature": 70 + i,
            "vibration": 0.25,
            "pressure": 3.0,
            "speed": 1500,
            "failure_within_1h": i % 2,
            "operator": "ann",
        }
        | overrides
        for i in ids
    ]
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO readings VALUES (:id, :entity_id, :ts, :temperature, :vibration,"
                " :pressure, :speed, :failure_within_1h, :operator)"
            ),
            rows,
        )


async def test_postgres_table_incremental_by_cursor_after_acknowledgement(
    ingest_url: str, broker: str, database_url: str, tmp_path: Path
) -> None:
    tag = f"pg-{secrets.token_hex(3)}"
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(READINGS)
    add_readings(engine, tag, range(1, 8))
    state = tmp_path / "state.json"
    args = (
        "sql", database_url, "--table", "readings", "--dataset", "machines",
        "--since-column", "ts", "--key-column", "id", "--state", str(state), "--batch", "3",
    )  # fmt: skip
    assert "sent 7 rows to dataset 'machines'" in succeeded(millrace(*args, ingest=ingest_url))
    first = await read_raw(broker, 7, tagged(tag))
    row_1 = next(v for v in first if v["entity_id"] == f"{tag}-1" and v["ts"][14:16] == "01")
    assert row_1 == {
        "dataset": "machines",
        "entity_id": f"{tag}-1",
        "ts": "2026-01-01T00:01:00+00:00",
        "temperature": 71.0,
        "vibration": 0.25,
        "pressure": 3.0,
        "speed": 1500.0,
        "failure_within_1h": 1,
        "event_id": row_1["event_id"],
    }
    assert "sent 0 rows past ts=" in succeeded(millrace(*args, ingest=ingest_url))
    # new rows, one of them bad: the rows before it are sent, the cursor stops there
    add_readings(engine, tag, range(8, 11))
    add_readings(engine, tag, range(11, 12), temperature=None)
    add_readings(engine, tag, range(12, 14))
    line = failed(millrace(*args, ingest=ingest_url))
    assert "table readings row id=11: temperature: required (float)" in line
    assert "(3 records sent before it)" in line
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE readings SET temperature = 80 WHERE id = 11"))
    assert "sent 3 rows past ts=" in succeeded(millrace(*args, ingest=ingest_url))
    values = await read_raw(broker, 13, tagged(tag))
    assert in_order_per_entity(values)
    assert sorted(v["ts"][14:16] for v in values) == [f"{m:02d}" for m in range(1, 14)]
    engine.dispose()


async def test_sqlite_query_rerun_without_cursor_sends_the_same_ids(
    ingest_url: str, broker: str, tmp_path: Path
) -> None:
    tag = f"lite-{secrets.token_hex(3)}"
    url = f"sqlite:///{tmp_path / 'plant.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(READINGS.replace("timestamptz", "timestamp"))
    add_readings(engine, tag, range(1, 5))
    engine.dispose()
    query = (
        "SELECT entity_id, ts, temperature, vibration, pressure, speed FROM readings"
        " WHERE operator = 'ann'"
    )
    args = ("sql", url, "--query", query, "--dataset", "machines", "--batch", "3")
    succeeded(millrace(*args, ingest=ingest_url, cwd=tmp_path))
    succeeded(millrace(*args, ingest=ingest_url, cwd=tmp_path))
    values = await read_raw(broker, 8, tagged(tag))
    assert sorted(Counter(v["event_id"] for v in values).values()) == [2, 2, 2, 2]
    assert min(v["ts"] for v in values) == "2026-01-01T00:01:00+00:00"


def test_sql_errors_are_one_line(ingest_url: str, database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(READINGS)
    engine.dispose()
    state = ("--state", str(tmp_path / "s.json"))
    cases = {
        "no table 'nope' in the database": ("--table", "nope"),
        "table readings has no column 'seen_at'": (
            "--table",
            "readings",
            "--since-column",
            "seen_at",
        ),
        "query: ": ("--query", "SELECT entity_id, ts FROM nope"),
    }
    for expected, source in cases.items():
        line = failed(
            millrace(
                "sql", database_url, *source, "--dataset", "machines", *state, ingest=ingest_url
            )
        )
        assert expected in line and "(no records sent)" in line
    down = failed(
        millrace("sql", "postgresql://ann:s3cret@127.0.0.1:1/plant", "--table", "readings",
                 "--dataset", "machines", *state, ingest=ingest_url)
    )  # fmt: skip
    assert "cannot connect to postgresql+psycopg://ann@127.0.0.1:1/plant" in down
    assert "s3cret" not in down
    unknown = failed(
        millrace("sql", database_url, "--table", "readings", "--dataset", "nope", *state,
                 ingest=ingest_url)
    )  # fmt: skip
    assert "nope" in unknown


# -- a re-run adds no feature rows ------------------------------------------------------


@pytest.fixture
def platform(
    supervisor: Supervisor,
    database_url: str,
    object_store_url: str,
    project_dir: Path,
    tmp_path: Path,
) -> Iterator[tuple[str, str]]:
    """A broker of its own with ingest and features on it: (ingest url, broker)."""
    port = free_port()
    broker_spec = tansu_spec(port)
    broker_spec.name = f"tansu-conn-{port}"
    supervisor.start(broker_spec)
    broker = f"127.0.0.1:{port}"
    ingest_name, url = started_ingest(supervisor, broker, project_dir)
    features = features_process(
        broker=broker,
        database_url=database_url,
        object_store_url=object_store_url,
        project_dir=project_dir,
        data_dir=tmp_path / "features",
    )
    supervisor.start(features, timeout=120)
    yield url, broker
    for name in (features.name, ingest_name, broker_spec.name):
        supervisor.stop(name)


async def count_features(broker: str, want: int) -> int:
    """How many messages reached ``features`` (a replay is published again), once ``want``."""
    found = await read_topic(
        broker, FEATURES, until=at_least(want), what=f"{want} feature rows", timeout=120
    )
    return len(found)


async def test_loading_twice_adds_no_feature_rows(
    platform: tuple[str, str],
    database_url: str,
    bucket: tuple[ObjectStore, str, str],
    tmp_path: Path,
) -> None:
    url, broker = platform
    store, name, endpoint = bucket
    tag = f"twice-{secrets.token_hex(3)}"
    first, second = tmp_path / "a" / "readings.csv", tmp_path / "b" / "copy.csv"
    for path in (first, second):
        path.parent.mkdir()
        path.write_bytes(csv_rows(tag, 12))
    store.put("in/readings.jsonl", jsonl_rows(tag, 8, start=100))
    s3 = ("s3", f"s3://{name}/in/", "--dataset", "machines", "--endpoint", endpoint)
    succeeded(millrace("file", str(first), "--dataset", "machines", ingest=url))
    succeeded(millrace(*s3, ingest=url))
    wait_until(lambda: count_rows(database_url) == 20, timeout=120, what="20 feature rows")
    # the same file from another path, the same objects: the same event ids
    succeeded(millrace("file", str(second), "--dataset", "machines", ingest=url))
    succeeded(millrace(*s3, ingest=url))
    assert len({v["event_id"] for v in await read_raw(broker, 40, tagged(tag))}) == 20
    # features has processed the replays (it publishes each again) and kept no new row
    assert await count_features(broker, 40) >= 40
    assert count_rows(database_url) == 20
