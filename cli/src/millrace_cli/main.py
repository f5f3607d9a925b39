"""The ``millrace`` command: run the embedded platform, load data, look at models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import httpx
import typer
from millrace_common.errors import MillraceError
from millrace_ingest.connectors.sender import ConnectorError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from millrace_cli import catalog
from millrace_cli.sites import sites_app

app = typer.Typer(
    help="Millrace: an event-driven ML platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
ingest_app = typer.Typer(help="Load data into the platform.", no_args_is_help=True)
models_app = typer.Typer(help="The model catalog.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
app.add_typer(models_app, name="models")
app.add_typer(sites_app, name="sites")
console = Console()
err = Console(stderr=True)


def fail(message: str) -> None:
    # one line whatever the terminal's width, the message's brackets printed as they are
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def dev(
    project: Annotated[Path, typer.Option(help="the project folder")] = Path("examples/factory"),
    workdir: Annotated[Path, typer.Option(help="state, logs, objects")] = Path(".millrace/dev"),
    batch: Annotated[int, typer.Option(help="simulated records per request")] = 20,
    interval: Annotated[float, typer.Option(help="seconds between batches")] = 0.5,
    port_offset: Annotated[
        int,
        typer.Option(help="added to every port (9092, 8010…8060)", min=0, max=56_000),
    ] = 0,
) -> None:
    """Run the whole platform on this machine (Tansu, SQLite, a local object store)."""
    from millrace_cli.dev import run_dev

    try:
        run_dev(
            workdir=workdir.resolve(),
            project=project.resolve(),
            batch=batch,
            interval=interval,
            console=console,
            port_offset=port_offset,
        )
    except (httpx.HTTPError, RuntimeError, TimeoutError, MillraceError) as exc:
        fail(f"millrace dev: {getattr(exc, 'message', None) or exc}".splitlines()[0])


IngestUrlOpt = Annotated[
    str, typer.Option("--url", help="ingest base URL", envvar="MILLRACE_INGEST_URL")
]
BatchOpt = Annotated[int, typer.Option(help="records per request", min=1, max=5000)]
DatasetOpt = Annotated[str, typer.Option(help="the dataset the records belong to")]


def _stopped(exc: ConnectorError) -> None:
    sent = "no records sent" if exc.sent == 0 else f"{exc.sent} records sent before it"
    fail(f"{exc.message} ({sent})")


@ingest_app.command("file")
def ingest_file(
    path: Path,
    dataset: DatasetOpt,
    url: IngestUrlOpt = "http://127.0.0.1:8010",
    batch: BatchOpt = 500,
) -> None:
    """Send a CSV or JSON-lines file (optionally .gz) to ingest, in batches; stops at the
    first bad line, after sending every line before it. Event ids come from the file's
    content and line, so loading the same file again doubles nothing."""
    from millrace_cli.ingest import send_file

    try:
        sent = send_file(path=path, dataset=dataset, url=url, batch=batch, console=console)
    except ConnectorError as exc:
        _stopped(exc)
    console.print(f"sent {sent} records to dataset '{dataset}'")


@ingest_app.command("s3")
def ingest_s3(
    location: Annotated[str, typer.Argument(metavar="s3://BUCKET/PREFIX")],
    dataset: DatasetOpt,
    endpoint: Annotated[
        str | None,
        typer.Option(help="S3 endpoint, e.g. http://minio:9000 (default: AWS_ENDPOINT_URL or AWS)"),
    ] = None,
    url: IngestUrlOpt = "http://127.0.0.1:8010",
    batch: BatchOpt = 500,
) -> None:
    """Send every CSV / JSON-lines object under the prefix (optionally .gz), in key order.
    Keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; event ids from bucket, key, ETag
    and line, so a re-run doubles nothing."""
    from millrace_cli.ingest import send_s3

    try:
        sent, scan = send_s3(
            location=location,
            endpoint=endpoint,
            dataset=dataset,
            url=url,
            batch=batch,
            console=console,
        )
    except ConnectorError as exc:
        _stopped(exc)
    skipped = f", skipped {len(scan.skipped)} not CSV/JSON lines" if scan.skipped else ""
    console.print(
        f"sent {sent} records from {len(scan.read)} objects to dataset '{dataset}'{skipped}"
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
    url: IngestUrlOpt = "http://127.0.0.1:8010",
    batch: BatchOpt = 500,
) -> None:
    """Send the rows of a table or query (Postgres, SQLite, … through SQLAlchemy), streamed
    in batches; with --since-column, only the rows past the last acknowledged one."""
    from millrace_ingest.connectors.sql import SqlSource

    from millrace_cli.ingest import send_sql

    try:
        source = SqlSource(
            database_url,
            table=table,
            query=query,
            since_column=since_column,
            key_column=key_column,
        )
        sent, run = send_sql(
            source=source, state=state, dataset=dataset, url=url, batch=batch, console=console
        )
    except ConnectorError as exc:
        _stopped(exc)
    except MillraceError as exc:
        fail(exc.message)
    since = f" past {since_column}={run.start.since}" if run.start is not None else ""
    console.print(f"sent {sent} rows{since} to dataset '{dataset}'")


@models_app.command("list")
def models_list(
    registry: Annotated[str, typer.Option(help="registry base URL")] = "http://127.0.0.1:8020",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The registered models and where their aliases point."""
    try:
        response = httpx.get(f"{registry}/v1/models", timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        fail(f"registry at {registry}: {exc}")
    models = response.json()
    if as_json:
        console.print_json(json.dumps(models))
        return
    table = Table("model", "aliases")
    for model in models:
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(model.get("aliases", {}).items()))
        table.add_row(model["name"], aliases or "-")
    console.print(table)


catalog.install(app, models_app)


if __name__ == "__main__":
    app()
