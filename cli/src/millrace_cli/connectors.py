"""What ``millrace ingest file|s3|sql`` sends: the connectors, sent to ingest over REST. Glue
only: the readers, event ids and the batch sender live in ``millrace_ingest.connectors``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from millrace_common.errors import MillraceError
from millrace_common.project import Dataset
from millrace_ingest.connectors.files import file_items
from millrace_ingest.connectors.s3 import S3Location, S3Scan, open_bucket, s3_items
from millrace_ingest.connectors.sender import ConnectorError, IngestClient, Item, Sent, send_all
from millrace_ingest.connectors.sql import CursorState, SqlRun, SqlSource
from rich.console import Console


@dataclass(frozen=True)
class Delivery:
    """Where and how every connector sends: ingest's URL, the dataset, records per post,
    how many bad records may be counted and skipped, and the console for progress."""

    url: str
    dataset: str
    batch: int
    max_refused: int
    console: Console


def _run(
    delivery: Delivery,
    items: Callable[[Dataset], Iterable[Item]],
    on_ack: Callable[[list[Item]], None] = lambda _items: None,
) -> Sent:
    """Describe the dataset, then send what ``items`` yields; every error says how many
    records went before it."""
    console = delivery.console

    def progress(sent: int) -> None:
        if console.is_terminal:
            console.print(f"  {sent} records sent", end="\r")

    try:
        with IngestClient(delivery.url) as client:
            spec = client.dataset(delivery.dataset)
            return send_all(
                client=client,
                dataset=delivery.dataset,
                items=items(spec),
                batch=delivery.batch,
                max_refused=delivery.max_refused,
                on_ack=on_ack,
                progress=progress,
            )
    except ConnectorError:
        raise
    except MillraceError as exc:
        raise ConnectorError(exc.message, sent=0) from None


def send_file(path: Path, delivery: Delivery) -> Sent:
    return _run(delivery, lambda spec: file_items(path, spec))


def send_s3(location: str, endpoint: str | None, delivery: Delivery) -> tuple[Sent, S3Scan]:
    scan = S3Scan()

    def items(spec: Dataset) -> Iterable[Item]:
        where = S3Location.parse(location)
        return s3_items(open_bucket(where, endpoint=endpoint), where, spec, scan=scan)

    return _run(delivery, items), scan


def send_sql(source: SqlSource, state: Path, delivery: Delivery) -> tuple[Sent, SqlRun]:
    runs: list[SqlRun] = []

    def items(spec: Dataset) -> Iterable[Item]:
        runs.append(
            SqlRun(source=source, dataset=spec, state=CursorState(state), batch=delivery.batch)
        )
        return runs[0].items()

    sent = _run(delivery, items, on_ack=lambda acked: runs[0].acknowledge(acked))
    return sent, runs[0]
