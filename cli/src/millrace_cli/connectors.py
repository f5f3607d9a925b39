"""What ``millrace ingest file|s3|sql`` sends: the connectors, sent to ingest over REST. Glue
only: the readers, event ids and the batch sender live in ``millrace_ingest.connectors``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from millrace_common.errors import MillraceError
from millrace_common.project import Dataset
from millrace_ingest.connectors.files import file_items
from millrace_ingest.connectors.s3 import S3Location, S3Scan, open_bucket, s3_items
from millrace_ingest.connectors.sender import ConnectorError, IngestClient, Item, Sent, send_all
from millrace_ingest.connectors.sql import CursorState, SqlRun, SqlSource
from rich.console import Console


def _run(
    *,
    url: str,
    dataset: str,
    batch: int,
    console: Console,
    items: Callable[[Dataset], Iterable[Item]],
    max_refused: int,
    on_ack: Callable[[list[Item]], None] = lambda _items: None,
) -> Sent:
    """Describe the dataset, then send what ``items`` yields; every error says how many
    records went before it."""

    def progress(sent: int) -> None:
        if console.is_terminal:
            console.print(f"  {sent} records sent", end="\r")

    try:
        with IngestClient(url) as client:
            spec = client.dataset(dataset)
            return send_all(
                client=client,
                dataset=dataset,
                items=items(spec),
                batch=batch,
                max_refused=max_refused,
                on_ack=on_ack,
                progress=progress,
            )
    except ConnectorError:
        raise
    except MillraceError as exc:
        raise ConnectorError(exc.message, sent=0) from None


def send_file(
    *, path: Path, dataset: str, url: str, batch: int, max_refused: int, console: Console
) -> Sent:
    return _run(
        url=url,
        dataset=dataset,
        batch=batch,
        console=console,
        items=lambda spec: file_items(path, spec),
        max_refused=max_refused,
    )


def send_s3(
    *,
    location: str,
    endpoint: str | None,
    dataset: str,
    url: str,
    batch: int,
    max_refused: int,
    console: Console,
) -> tuple[Sent, S3Scan]:
    scan = S3Scan()

    def items(spec: Dataset) -> Iterable[Item]:
        where = S3Location.parse(location)
        return s3_items(open_bucket(where, endpoint=endpoint), where, spec, scan=scan)

    sent = _run(
        url=url,
        dataset=dataset,
        batch=batch,
        console=console,
        items=items,
        max_refused=max_refused,
    )
    return sent, scan


def send_sql(
    *,
    source: SqlSource,
    state: Path,
    dataset: str,
    url: str,
    batch: int,
    max_refused: int,
    console: Console,
) -> tuple[Sent, SqlRun]:
    runs: list[SqlRun] = []

    def items(spec: Dataset) -> Iterable[Item]:
        runs.append(SqlRun(source=source, dataset=spec, state=CursorState(state), batch=batch))
        return runs[0].items()

    sent = _run(
        url=url,
        dataset=dataset,
        batch=batch,
        console=console,
        items=items,
        max_refused=max_refused,
        on_ack=lambda acked: runs[0].acknowledge(acked),
    )
    return sent, runs[0]
