"""``millrace ingest file|s3|sql``: load data into the platform through ingest's REST API.
The connectors (``connectors``, and ingest's readers behind it) are imported when a
command runs, so the rest of the CLI starts without them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from millrace_cli.errors import CliError
from millrace_cli.options import INGEST, IngestOpt
from millrace_cli.render import console, say

ingest_app = typer.Typer(help="Load data into the platform.", no_args_is_help=True)
BatchOpt = Annotated[int, typer.Option(help="records per request", min=1, max=5000)]
DatasetOpt = Annotated[str, typer.Option(help="the dataset the records belong to")]
Sent = TypeVar("Sent")


def run_connector(send: Callable[[], Sent]) -> Sent:
    """What a connector's ``send`` returns; one that stops fails in one line saying how
    far it got."""
    from millrace_ingest.connectors.sender import ConnectorError

    try:
        return send()
    except ConnectorError as exc:
        sent = "no records sent" if exc.sent == 0 else f"{exc.sent} records sent before it"
        raise CliError(f"{exc.message} ({sent})") from None


@ingest_app.command("file")
def ingest_file(
    path: Path,
    dataset: DatasetOpt,
    url: IngestOpt = INGEST,
    batch: BatchOpt = 500,
) -> None:
    """Send a CSV or JSON-lines file (optionally .gz) to ingest, in batches; stops at the
    first bad line, after sending every line before it. Event ids come from the file's
    content and line, so loading the same file again doubles nothing."""
    from millrace_cli.connectors import send_file

    sent = run_connector(
        lambda: send_file(path=path, dataset=dataset, url=url, batch=batch, console=console)
    )
    say(f"sent {sent} records to dataset '{dataset}'")


@ingest_app.command("s3")
def ingest_s3(
    location: Annotated[str, typer.Argument(metavar="s3://BUCKET/PREFIX")],
    dataset: DatasetOpt,
    endpoint: Annotated[
        str | None,
        typer.Option(help="S3 endpoint, e.g. http://minio:9000 (default: AWS_ENDPOINT_URL or AWS)"),
    ] = None,
    url: IngestOpt = INGEST,
    batch: BatchOpt = 500,
) -> None:
    """Send every CSV / JSON-lines object under the prefix (optionally .gz), in key order.
    Keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; event ids from bucket, key, ETag
    and line, so a re-run doubles nothing."""
    from millrace_cli.connectors import send_s3

    sent, scan = run_connector(
        lambda: send_s3(
            location=location,
            endpoint=endpoint,
            dataset=dataset,
            url=url,
            batch=batch,
            console=console,
        )
    )
    skipped = f", skipped {len(scan.skipped)} not CSV/JSON lines" if scan.skipped else ""
    say(f"sent {sent} records from {len(scan.read)} objects to dataset '{dataset}'{skipped}")


@ingest_app.command("sql")
def ingest_sql(
    database_url: Annotated[str, typer.Argument(metavar="DATABASE_URL")],
    dataset: DatasetOpt,
    table: Annotated[str | None, typer.Option(help="a table (or schema.table)")] = None,
    query: Annotated[str | None, typer.Option(help="a SELECT, instead of --table")] = None,
    since_column: Annotated[
        str | None, typer.Option(help="incremental: read only rows past the last run's value")
    ] = None,
    key_column: Annotated[
        str | None, typer.Option(help="the column that names a row (its event id)")
    ] = None,
    state: Annotated[Path, typer.Option(help="where --since-column's cursor is kept")] = Path(
        ".millrace/sql-state.json"
    ),
    url: IngestOpt = INGEST,
    batch: BatchOpt = 500,
) -> None:
    """Send the rows of a table or query (Postgres, SQLite, … through SQLAlchemy), streamed
    in batches; with --since-column, only the rows past the last acknowledged one."""
    from millrace_ingest.connectors.sql import SqlSource

    from millrace_cli.connectors import send_sql

    source = SqlSource(
        database_url, table=table, query=query, since_column=since_column, key_column=key_column
    )
    sent, run = run_connector(
        lambda: send_sql(
            source=source, state=state, dataset=dataset, url=url, batch=batch, console=console
        )
    )
    since = f" past {since_column}={run.start.since}" if run.start is not None else ""
    say(f"sent {sent} rows{since} to dataset '{dataset}'")
