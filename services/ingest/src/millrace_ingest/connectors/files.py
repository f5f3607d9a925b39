"""The file connector: a CSV or JSON-lines file (optionally gzip'd) or a Parquet file into
records of a dataset, each with an event id from the file's content and its line (row)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from millrace_common.errors import InvalidInput
from millrace_common.project import Dataset

from millrace_ingest.connectors.event_ids import file_event_id, with_event_id
from millrace_ingest.connectors.reader import Unreadable, format_of, position, read_stream
from millrace_ingest.connectors.sender import Item


def file_items(path: Path, dataset: Dataset) -> Iterator[Item]:
    """Yield the file's records, in order, ready to send."""
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}", field="path")
    found = format_of(path.name)
    if found is None:
        raise InvalidInput(
            f"unsupported file type '{path.suffix}' (use .csv or .jsonl, optionally .gz, "
            "or .parquet)",
            field="path",
        )
    kind, gzipped = found
    content = _sha256(path)
    with path.open("rb") as handle:
        for line, record in read_stream(
            handle, kind=kind, gzipped=gzipped, dataset=dataset, where=str(path)
        ):
            where = f"{path} {position(kind, line)}"
            if isinstance(record, Unreadable):
                yield Item(where, record.raw, refusal=record.reason)
            else:
                yield Item(where, with_event_id(record, file_event_id(content, line)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
