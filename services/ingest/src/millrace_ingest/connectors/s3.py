"""The S3 connector: every CSV / JSON-lines object (optionally gzip'd) under a prefix, in key
order, through the file reader; event ids from bucket, key, the object's ETag and size, and
the line."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import urlencode, urlparse

from millrace_common.errors import InvalidInput, MillraceError, NotFound, Unavailable
from millrace_common.objectstore import ObjectInfo, ObjectStore, open_store
from millrace_common.project import Dataset

from millrace_ingest.connectors.event_ids import s3_event_id, with_event_id
from millrace_ingest.connectors.reader import (
    Format,
    Read,
    Unreadable,
    format_of,
    position,
    read_stream,
)
from millrace_ingest.connectors.sender import Item

DEFAULT_ENDPOINT = "https://s3.amazonaws.com"


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise InvalidInput(f"not an s3://BUCKET/PREFIX url: {url}", field="url")
        return cls(parsed.netloc, parsed.path.lstrip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def open_bucket(location: S3Location, *, endpoint: str | None) -> ObjectStore:
    """The bucket through the object-store port; keys and region from the usual AWS_* env,
    the endpoint from ``endpoint``, else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL."""
    endpoint = (
        endpoint
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or DEFAULT_ENDPOINT
    )
    query = {"endpoint": endpoint}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        query["region"] = region
    return open_store(f"s3://{location.bucket}?{urlencode(query)}", create_bucket=False)


@dataclass
class S3Scan:
    """What a run found: objects read and objects skipped (neither CSV nor JSON lines)."""

    read: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def s3_items(
    store: ObjectStore, location: S3Location, dataset: Dataset, *, scan: S3Scan | None = None
) -> Iterator[Item]:
    """Yield the records of every readable object under the prefix, in key order."""
    scan = scan if scan is not None else S3Scan()
    for info in _listing(store, location):
        found = format_of(info.key)
        if found is None:
            scan.skipped.append(info.key)
            continue
        kind, gzipped = found
        where = f"s3://{location.bucket}/{info.key}"
        scan.read.append(info.key)
        with _opened(store, info, kind, where) as stream:
            records = read_stream(stream, kind=kind, gzipped=gzipped, dataset=dataset, where=where)
            for line, record in _reading(records, where):
                place = f"{where} {position(kind, line)}"
                if isinstance(record, Unreadable):
                    yield Item(place, record.raw, refusal=record.reason)
                    continue
                event_id = s3_event_id(
                    bucket=location.bucket, key=info.key, etag=info.etag, size=info.size, line=line
                )
                yield Item(place, with_event_id(record, event_id))


def _listing(store: ObjectStore, location: S3Location) -> Iterator[ObjectInfo]:
    try:
        # listed whole before reading: a key written meanwhile waits for the next run
        listed = list(store.list(location.prefix))
    except NotFound:
        raise InvalidInput(f"no bucket '{location.bucket}'", field="url") from None
    except Unavailable as exc:
        raise InvalidInput(
            f"cannot list {location}: {_short(exc.__cause__ or exc)}", field="url"
        ) from None
    except MillraceError:
        raise
    except Exception as exc:  # noqa: BLE001 - minio and urllib3 errors: unreachable or refused
        raise InvalidInput(f"cannot list {location}: {_short(exc)}", field="url") from None
    return iter(listed)


@contextmanager
def _opened(store: ObjectStore, info: ObjectInfo, kind: Format, where: str) -> Iterator[IO[bytes]]:
    """The object as a stream, read as it arrives (an object may be larger than memory);
    Parquet whole, since its reader seeks to the footer first."""
    try:
        if kind == "parquet":
            yield io.BytesIO(store.get(info.key))
            return
        with store.open(info.key) as stream:
            yield stream
    except MillraceError:
        raise
    except Exception as exc:  # noqa: BLE001 - minio and urllib3 errors while opening
        raise InvalidInput(f"cannot read {where}: {_short(exc)}", field="url") from None


def _reading(records: Iterator[Read], where: str) -> Iterator[Read]:
    """``records``, with a connection lost mid-object named as such (one line)."""
    try:
        yield from records
    except MillraceError:
        raise
    except Exception as exc:  # noqa: BLE001 - urllib3/minio errors while the body streams in
        raise InvalidInput(f"cannot read {where}: {_short(exc)}", field="url") from None


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(text).splitlines()[0]
