"""Deterministic event ids for what the connectors send, so a re-run is recognised downstream
(features keeps one offline row per feature set and event id; see DESIGN.md §5).

The same source content always gives the same id, and different sources never share one:
each id is a digest of where the record came from, prefixed by the kind of source.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def file_event_id(content_sha256: str, line: int) -> str:
    """From the file's content and the line, not its path: the same file loaded from
    anywhere, twice, sends the same ids."""
    return f"file-{content_sha256[:32]}-{line}"


def s3_event_id(*, bucket: str, key: str, etag: str, size: int, line: int) -> str:
    """From the object's identity and version (ETag and size) and the line."""
    return f"s3-{_digest(bucket, key, etag, str(size))}-{line}"


def sql_event_id(*, source: str, key: Any, version: Any = None) -> str:
    """From the table (or query), the row's key-column value and, when the source is
    polled by a cursor column, the row's value there: a row updated past the cursor is a
    new record, the same row seen again is the same one."""
    parts = [source, orjson.dumps(key).decode()]
    if version is not None:
        parts.append(orjson.dumps(version).decode())
    return f"sql-{_digest(*parts)}"


def sql_row_event_id(*, source: str, row: dict[str, Any]) -> str:
    """From the table (or query) and the whole row, when there is no key column."""
    return f"sql-{_digest(source, orjson.dumps(row, option=orjson.OPT_SORT_KEYS).decode())}"


def with_event_id(record: dict[str, Any], event_id: str) -> dict[str, Any]:
    """The record with ``event_id``, unless it already carries one of its own."""
    if record.get("event_id"):
        return record
    return {**record, "event_id": event_id}
