"""CSV and JSON lines (optionally gzip'd) and Parquet into records of a dataset: one reader
for every connector that reads bytes (files, S3 objects). No I/O of its own: it reads a
stream. A record's number is its line (CSV, JSON lines) or its row (Parquet, from 1)."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, Literal, NamedTuple, cast

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from millrace_common.errors import InvalidInput
from millrace_common.project import Dataset

from millrace_ingest.connectors.values import json_value

Format = Literal["csv", "jsonl", "parquet"]
SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
}
PARQUET_BATCH = 1024


class Unreadable(NamedTuple):
    """A line that is no record (not JSON, a value of the wrong type, too many values):
    refused and counted by the sender, the rest of the stream read on."""

    reason: str
    raw: dict[str, Any]


Read = tuple[int, "dict[str, Any] | Unreadable"]


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes")


_CASTS: dict[str, Callable[[str], Any]] = {"float": float, "int": int, "str": str, "bool": _bool}


def format_of(name: str) -> tuple[Format, bool] | None:
    """The format of ``name`` and whether it is gzip'd (``x.csv.gz``), or None if neither
    (Parquet compresses inside the file, so ``x.parquet.gz`` is not one)."""
    lowered = name.lower()
    gzipped = lowered.endswith(".gz")
    stem = lowered[: -len(".gz")] if gzipped else lowered
    for suffix, kind in SUFFIXES.items():
        if stem.endswith(suffix):
            return None if gzipped and kind == "parquet" else (kind, gzipped)
    return None


def position(kind: Format, number: int) -> str:
    """How a record's number reads in a message: its line, or its row for Parquet."""
    return f"row {number}" if kind == "parquet" else f"line {number}"


def read_stream(
    stream: IO[bytes], *, kind: Format, gzipped: bool, dataset: Dataset, where: str
) -> Iterator[Read]:
    """Yield (line number, record or ``Unreadable``); a stream that cannot be read at all
    raises InvalidInput naming ``where``."""
    source = cast(IO[bytes], gzip.GzipFile(fileobj=stream, mode="rb")) if gzipped else stream
    try:
        if kind == "csv":
            yield from _read_csv(source, dataset, where)
        elif kind == "parquet":
            yield from _read_parquet(source)
        else:
            yield from _read_jsonl(source, where)
    except (gzip.BadGzipFile, EOFError, UnicodeDecodeError, csv.Error, pa.ArrowException) as exc:
        raise InvalidInput(f"{where}: unreadable ({exc})", field="path") from None


def _read_jsonl(stream: IO[bytes], where: str) -> Iterator[Read]:
    del where  # a line's own problems are named by the sender with its place
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        raw = {"line": line.decode("utf-8", errors="replace").rstrip("\r\n")}
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield number, Unreadable(f"not JSON ({exc})", raw)
            continue
        if not isinstance(record, dict):
            yield number, Unreadable("expected a JSON object", raw)
            continue
        yield number, record


def _read_parquet(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Row by row, a batch of columns at a time; the file's own types, nulls left out."""
    number = 0
    for batch in pq.ParquetFile(stream).iter_batches(batch_size=PARQUET_BATCH):
        for row in batch.to_pylist():
            number += 1
            yield number, {k: json_value(v) for k, v in row.items() if v is not None}


def _read_csv(stream: IO[bytes], dataset: Dataset, where: str) -> Iterator[Read]:
    del where  # a line's own problems are named by the sender with its place
    types = dataset.all_fields()
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text)
    for row in reader:
        # line_num is the physical line the row ends on, quoted newlines included
        yield reader.line_num, _typed_row(row, types)


def _typed_row(row: dict[str, Any], types: Mapping[str, str]) -> dict[str, Any] | Unreadable:
    record: dict[str, Any] = {}
    for key, text in row.items():
        if key is None:
            raw = {k: v for k, v in row.items() if k is not None} | {"extra values": text}
            return Unreadable("more values than header columns", raw)
        if text is None or text == "":
            continue
        kind = types.get(key)
        try:
            record[key] = _CASTS[kind](text) if kind else text
        except ValueError:
            return Unreadable(f"{key}: expected {kind}, got {text!r}", row)
    return record
