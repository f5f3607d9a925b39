"""The SQL connector: a table or a query through SQLAlchemy (Postgres via psycopg, SQLite …),
streamed in batches, values turned into JSON types, incremental by a cursor column.

With ``since_column`` a run reads only the rows past the cursor the last run left (kept in
a small state file per database URL without its password, table or query, and dataset),
and the cursor moves only once ingest acknowledged a batch. With ``key_column`` the cursor
is (since, key), exact even when many rows share a since value; without it, the cursor
stops short of a since value whose rows were not all acknowledged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from millrace_common.db import normalise_url
from millrace_common.errors import InvalidInput
from millrace_common.project import Dataset

from millrace_ingest.connectors.event_ids import sql_event_id, sql_row_event_id, with_event_id
from millrace_ingest.connectors.sender import Item
from millrace_ingest.connectors.values import json_value

DEFAULT_STATE = Path(".millrace/sql-state.json")


@dataclass(frozen=True)
class Cursor:
    """Where the last acknowledged row stood: its since value (and key, when keyed)."""

    since: Any
    key: Any = None


@dataclass(frozen=True)
class SqlSource:
    url: str
    table: str | None = None
    query: str | None = None
    since_column: str | None = None
    key_column: str | None = None

    def __post_init__(self) -> None:
        if (self.table is None) == (self.query is None):
            raise InvalidInput("give either --table or --query", field="table")

    @property
    def name(self) -> str:
        """What names the source in event ids: the table, or the query's text."""
        return self.table if self.table is not None else " ".join(str(self.query).split())

    @property
    def label(self) -> str:
        return f"table {self.table}" if self.table is not None else "query"

    @property
    def safe_url(self) -> str:
        """The URL without its password: fit for messages and the state file."""
        try:
            url = sa.make_url(normalise_url(self.url))
        except sa.exc.ArgumentError:
            raise InvalidInput(
                "not a database URL (e.g. postgresql://host/db)", field="url"
            ) from None
        # URL.set ignores None: build it again without the password
        bare = sa.URL.create(
            url.drivername,
            username=url.username,
            host=url.host,
            port=url.port,
            database=url.database,
            query=url.query,
        )
        return bare.render_as_string(hide_password=False)


# -- values ----------------------------------------------------------------------------


def row_record(row: Mapping[str, Any], *, dataset: Dataset, skip: set[str]) -> dict[str, Any]:
    """The record a row becomes: its columns as JSON values, NULLs left out, the entity id
    as a string, ``skip`` (bookkeeping columns the dataset does not know) left out."""
    kinds = dataset.all_fields()
    record: dict[str, Any] = {}
    for column, value in row.items():
        if column in skip or value is None:
            continue
        if (
            kinds.get(column) == "int"
            and isinstance(value, Decimal)
            and value == value.to_integral()
        ):
            record[column] = int(value)
        else:
            record[column] = json_value(value)
    entity = record.get(dataset.entity)
    if entity is not None and not isinstance(entity, str):
        record[dataset.entity] = str(entity)
    return record


def with_checkpoints(
    rows: Iterable[Mapping[str, Any]], *, since: str | None, key: str | None
) -> Iterator[tuple[Mapping[str, Any], Cursor | None]]:
    """Each row (in since order) with the cursor that is safe to keep once it and every row
    before it are acknowledged. Unkeyed, a since value is safe only when the next row has
    another one, so rows sharing it are never split between a run and the next."""
    if since is None:
        yield from ((row, None) for row in rows)
        return
    if key is not None:
        yield from ((row, Cursor(row[since], row[key])) for row in rows)
        return
    safe: Cursor | None = None
    previous: Mapping[str, Any] | None = None
    for row in rows:
        if previous is not None:
            if row[since] != previous[since]:
                safe = Cursor(previous[since])
            yield previous, safe
        previous = row
    if previous is not None:
        yield previous, Cursor(previous[since])


# -- the state file ----------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise InvalidInput(f"cannot keep a cursor of type {type(value).__name__}", field="since")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "datetime" in value:
            return datetime.fromisoformat(value["datetime"])
        if "date" in value:
            return date.fromisoformat(value["date"])
        if "decimal" in value:
            return Decimal(value["decimal"])
    return value


class CursorState:
    """Cursors in a small JSON file, one per (URL without password, source, dataset, since
    column); each save replaces the file atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _entries(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read the state file {self.path}: {exc}") from None
        return list(data.get("cursors", []))

    def load(self, ident: dict[str, str]) -> Cursor | None:
        for entry in self._entries():
            if all(entry.get(k) == v for k, v in ident.items()):
                return Cursor(_decode(entry["since"]), _decode(entry.get("key")))
        return None

    def save(self, ident: dict[str, str], cursor: Cursor) -> None:
        entries = [e for e in self._entries() if any(e.get(k) != v for k, v in ident.items())]
        entries.append({**ident, "since": _encode(cursor.since), "key": _encode(cursor.key)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"cursors": entries}, indent=2) + "\n")
        os.replace(tmp, self.path)


# -- reading -------------------------------------------------------------------------------


@dataclass
class SqlRun:
    """One run of the connector: where it started and the items it yields."""

    source: SqlSource
    dataset: Dataset
    state: CursorState
    batch: int = 500
    start: Cursor | None = None

    @property
    def ident(self) -> dict[str, str]:
        return {
            "url": self.source.safe_url,
            "source": self.source.name,
            "dataset": self.dataset.name,
            "since_column": self.source.since_column or "",
        }

    def acknowledge(self, items: list[Item]) -> None:
        """ingest has these: keep the newest safe cursor among them."""
        cursors = [i.checkpoint for i in items if i.checkpoint is not None]
        if cursors:
            self.state.save(self.ident, cursors[-1])

    def items(self) -> Iterator[Item]:
        engine = _engine(self.source)
        try:
            with _connected(engine, self.source) as conn:
                self.start = (
                    self.state.load(self.ident) if self.source.since_column is not None else None
                )
                statement, skip = _statement(conn, self.source, self.dataset, self.start)
                yield from self._stream(conn, statement, skip)
        finally:
            engine.dispose()

    def _stream(
        self, conn: sa.Connection, statement: sa.Select[Any], skip: set[str]
    ) -> Iterator[Item]:
        source = self.source
        streaming = conn.execution_options(stream_results=True, yield_per=self.batch)
        rows = _guard(lambda: streaming.execute(statement).mappings(), source)
        for number, (row, checkpoint) in enumerate(
            with_checkpoints(
                _guarded_rows(rows, source), since=source.since_column, key=source.key_column
            ),
            start=1,
        ):
            record = row_record(row, dataset=self.dataset, skip=skip)
            if source.key_column is not None:
                key = json_value(row[source.key_column])
                where = f"{source.label} row {source.key_column}={key}"
                version = (
                    json_value(row[source.since_column])
                    if source.since_column is not None
                    else None
                )
                event_id = sql_event_id(source=source.name, key=key, version=version)
            else:
                where = f"{source.label} row {number} of this run"
                event_id = sql_row_event_id(source=source.name, row=record)
            yield Item(where, with_event_id(record, event_id), checkpoint)


def _engine(source: SqlSource) -> sa.Engine:
    url = normalise_url(source.url)
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise InvalidInput("not a database URL (e.g. postgresql://host/db)", field="url") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database not in ("", ":memory:") and not Path(database).is_file():
            raise InvalidInput(f"no SQLite database file {database}", field="url")
    try:
        return sa.create_engine(parsed)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise InvalidInput(
            f"cannot use {source.safe_url}: {_first_line(exc)}", field="url"
        ) from None


class _connected:
    """A connection, or a one-line error naming the database (never its password)."""

    def __init__(self, engine: sa.Engine, source: SqlSource) -> None:
        self.engine = engine
        self.source = source
        self.conn: sa.Connection | None = None

    def __enter__(self) -> sa.Connection:
        try:
            self.conn = self.engine.connect()
        except sa.exc.DBAPIError as exc:
            raise InvalidInput(
                f"cannot connect to {self.source.safe_url}: {_first_line(exc.orig)}", field="url"
            ) from None
        return self.conn

    def __exit__(self, *_exc: object) -> None:
        if self.conn is not None:
            self.conn.close()


def _statement(
    conn: sa.Connection, source: SqlSource, dataset: Dataset, start: Cursor | None
) -> tuple[sa.Select[Any], set[str]]:
    """The SELECT for this run and the bookkeeping columns the records leave out."""
    if source.table is not None:
        columns = _table_columns(conn, source, dataset)
        selectable: Any = _table(conn, source.table)
    else:
        columns = _query_columns(conn, source)
        selectable = sa.text(f"({_bare(source.query)}) AS millrace_src")
    wanted = [c for c in (source.since_column, source.key_column) if c is not None]
    for column in wanted:
        if column not in columns:
            raise InvalidInput(f"{source.label} has no column '{column}'", field=column)
    known = set(dataset.all_fields()) | {dataset.entity, dataset.time, "event_id"}
    skip = {c for c in wanted if c not in known}
    if source.table is not None:
        picked = [c for c in columns if c in known or c in wanted]
        statement = sa.select(*(selectable.c[c] for c in picked))
        col: Callable[[str, Any], Any] = lambda name, _value: selectable.c[name]  # noqa: E731
    else:
        statement = sa.select(sa.literal_column("*")).select_from(selectable)
        col = lambda name, value: sa.column(name, _type_of(value))  # noqa: E731
    return _incremental(statement, source, start, col), skip


def _incremental(
    statement: sa.Select[Any],
    source: SqlSource,
    start: Cursor | None,
    col: Callable[[str, Any], Any],
) -> sa.Select[Any]:
    since, key = source.since_column, source.key_column
    if since is not None:
        statement = statement.where(col(since, None).is_not(None))
        if start is not None:
            past = col(since, start.since) > start.since
            if key is not None and start.key is not None:
                same = sa.and_(
                    col(since, start.since) == start.since, col(key, start.key) > start.key
                )
                past = sa.or_(past, same)
            statement = statement.where(past)
    order = [c for c in (since, key) if c is not None]
    return statement.order_by(*(col(c, None) for c in order)) if order else statement


def _type_of(value: Any) -> Any:
    """A bind type for a value compared with a column of a query (whose type is unknown)."""
    if isinstance(value, datetime):
        return sa.DateTime(timezone=value.tzinfo is not None)
    if isinstance(value, date):
        return sa.Date()
    if isinstance(value, Decimal):
        return sa.Numeric()
    if isinstance(value, bool):
        return sa.Boolean()
    if isinstance(value, int):
        return sa.BigInteger()
    if isinstance(value, float):
        return sa.Float()
    return None


def _table(conn: sa.Connection, name: str) -> sa.Table:
    schema, _, table = name.rpartition(".")
    try:
        return sa.Table(table, sa.MetaData(), autoload_with=conn, schema=schema or None)
    except sa.exc.NoSuchTableError:
        raise InvalidInput(f"no table '{name}' in the database", field="table") from None
    except sa.exc.DBAPIError as exc:
        raise InvalidInput(f"table {name}: {_first_line(exc.orig)}", field="table") from None


def _table_columns(conn: sa.Connection, source: SqlSource, dataset: Dataset) -> list[str]:
    columns = [c.name for c in _table(conn, str(source.table)).columns]
    needed = [dataset.entity, dataset.time, *dataset.fields]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InvalidInput(
            f"{source.label} has no column '{missing[0]}' (dataset '{dataset.name}' needs it;"
            " use --query to select or rename columns)",
            field=missing[0],
        )
    return columns


def _query_columns(conn: sa.Connection, source: SqlSource) -> list[str]:
    probe = sa.text(f"SELECT * FROM ({_bare(source.query)}) AS millrace_src WHERE 1 = 0")
    return list(_guard(lambda: conn.execute(probe).keys(), source))


def _bare(query: str | None) -> str:
    return str(query).strip().rstrip(";").strip()


def _guard(run: Callable[[], Any], source: SqlSource) -> Any:
    try:
        return run()
    except sa.exc.DBAPIError as exc:
        conn_lost = " (connection lost)" if exc.connection_invalidated else ""
        raise InvalidInput(f"{source.label}: {_first_line(exc.orig)}{conn_lost}") from None


def _guarded_rows(
    rows: Iterable[Mapping[str, Any]], source: SqlSource
) -> Iterator[Mapping[str, Any]]:
    iterator = iter(rows)
    while True:
        row = _guard(lambda: next(iterator, None), source)
        if row is None:
            return
        yield row


def _first_line(exc: BaseException | None) -> str:
    text = str(exc) if exc is not None else ""
    return (text.splitlines() or [type(exc).__name__])[0].strip()
