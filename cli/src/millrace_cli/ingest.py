"""``millrace ingest file|s3|sql``: load data into the platform through ingest's REST API.
The connectors (``connectors``, and ingest's readers behind it) are imported when a
command runs, so the rest of the CLI starts without them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from millrace_cli.errors import CliError
from millrace_cli.options import INGEST, IngestOpt
from millrace_cli.render import console, say

if TYPE_CHECKING:
    from millrace_ingest.connectors.sender import Sent

ingest_app = typer.Typer(help="Load data into the platform.", no_args_is_help=True)
BatchOpt = Annotated[int, typer.Option(help="records per request", min=1, max=5000)]
DatasetOpt = Annotated[str, typer.Option(help="the dataset the records belong to")]
MaxRefusedOpt = Annotated[
    int,
    typer.Option(
        help="bad records to count and skip (with their reasons) before the run stops; "
        "0: stop at the first",
        min=0,
    ),
]
RefusedOpt = Annotated[
    Path | None,
    typer.Option(help="write each refused record, where it was and why, as JSON lines"),
]
Result = TypeVar("Result")


def run_connector(send: Callable[[], Result]) -> Result:
    """What a connector's ``send`` returns; one that stops fails in one line saying how
    far it got."""
    from millrace_ingest.connectors.sender import ConnectorError

    try:
        return send()
    except ConnectorError as exc:
        sent = "no records sent" if exc.sent == 0 else f"{exc.sent} records sent before it"
        refused = f", {exc.refused} refused" if exc.refused else ""
        raise CliError(f"{exc.message} ({sent}{refused})") from None


def refusals(done: Sent, keep: Path | None) -> str:
    """``; refused 3 (tenure_weeks: expected int (3)), the first at f.csv line 7``, and
    the refused records written to ``keep``."""
    if not done.refused:
        return ""
    if keep is not None:
        with keep.open("w") as out:
            for r in done.refused:
                out.write(json.dumps({"where": r.where, "reason": r.reason, "record": r.record}))
                out.write("\n")
    line = f"; refused {len(done.refused)} ({done.reasons()}), the first at {done.refused[0].where}"
    return line + (f", all in {keep}" if keep is not None else "")


@ingest_app.command("file")
def ingest_file(
    path: Path,
    dataset: DatasetOpt,
    url: IngestOpt = INGEST,
    batch: BatchOpt = 500,
    max_refused: MaxRefusedOpt = 0,
    refused: RefusedOpt = None,
) -> None:
    """Send a CSV, JSON-lines (optionally .gz) or Parquet file to ingest, in batches. A bad
    line stops the run after every line before it was sent, unless --max-refused lets
    that many be counted and skipped. Event ids come from the file's content and line, so
    loading the same file again doubles nothing."""
    from millrace_cli.connectors import Delivery, send_file

    delivery = Delivery(url, dataset, batch, max_refused, console)
    done = run_connector(lambda: send_file(path, delivery))
    say(f"sent {done.sent} records to dataset '{dataset}'{refusals(done, refused)}")


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
    max_refused: MaxRefusedOpt = 0,
    refused: RefusedOpt = None,
) -> None:
    """Send every CSV / JSON-lines object under the prefix (optionally .gz), in key order.
    Keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; event ids from bucket, key, ETag
    and line, so a re-run doubles nothing."""
    from millrace_cli.connectors import Delivery, send_s3

    delivery = Delivery(url, dataset, batch, max_refused, console)
    done, scan = run_connector(lambda: send_s3(location, endpoint, delivery))
    skipped = f", skipped {len(scan.skipped)} not CSV/JSON lines" if scan.skipped else ""
    say(
        f"sent {done.sent} records from {len(scan.read)} objects to dataset '{dataset}'"
        f"{skipped}{refusals(done, refused)}"
    )


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
    max_refused: MaxRefusedOpt = 0,
    refused: RefusedOpt = None,
) -> None:
    """Send the rows of a table or query (Postgres, SQLite, … through SQLAlchemy), streamed
    in batches; with --since-column, only the rows past the last acknowledged one."""
    from millrace_ingest.connectors.sql import SqlSource

    from millrace_cli.connectors import Delivery, send_sql

    source = SqlSource(
        database_url, table=table, query=query, since_column=since_column, key_column=key_column
    )
    delivery = Delivery(url, dataset, batch, max_refused, console)
    done, run = run_connector(lambda: send_sql(source, state, delivery))
    since = f" past {since_column}={run.start.since}" if run.start is not None else ""
    say(f"sent {done.sent} rows{since} to dataset '{dataset}'{refusals(done, refused)}")
