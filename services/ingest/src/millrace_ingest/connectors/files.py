"""The file connector: CSV and JSON-lines files into typed records of a dataset."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
from millrace_common.errors import InvalidInput
from millrace_common.project import Dataset


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes")


_CASTS: dict[str, Callable[[str], Any]] = {"float": float, "int": int, "str": str, "bool": _bool}


def read_records(path: Path, dataset: Dataset) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) from a ``.csv`` or ``.jsonl``/``.json`` file."""
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}", field="path")
    if path.suffix.lower() == ".csv":
        yield from _read_csv(path, dataset)
    elif path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        yield from _read_jsonl(path)
    else:
        raise InvalidInput(
            f"unsupported file type '{path.suffix}' (use .csv or .jsonl)", field="path"
        )


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"line {number}: not JSON ({exc})", field="path") from None
            if not isinstance(record, dict):
                raise InvalidInput(f"line {number}: expected a JSON object", field="path")
            yield number, record


def _read_csv(path: Path, dataset: Dataset) -> Iterator[tuple[int, dict[str, Any]]]:
    types = dataset.all_fields()
    with path.open(newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            yield number, _typed_row(row, types, number)


def _typed_row(row: dict[str, str], types: Mapping[str, str], number: int) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, text in row.items():
        if text is None or text == "":
            continue
        kind = types.get(key)
        try:
            record[key] = _CASTS[kind](text) if kind else text
        except ValueError:
            raise InvalidInput(
                f"line {number}: {key}: expected {kind}, got {text!r}", field=key
            ) from None
    return record
