"""The ``millrace`` command: run the embedded platform, load data, look at models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import httpx
import typer
from millrace_common.errors import MillraceError
from rich.console import Console
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
    err.print(f"[red]error:[/] {message}")
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


@ingest_app.command("file")
def ingest_file(
    path: Path,
    dataset: Annotated[str, typer.Option(help="the dataset the records belong to")],
    url: Annotated[str, typer.Option(help="ingest base URL")] = "http://127.0.0.1:8010",
    batch: Annotated[int, typer.Option(help="records per request")] = 500,
) -> None:
    """Send a CSV or JSON-lines file to ingest, in batches; stops at the first bad line."""
    from millrace_cli.ingest_file import send_file

    try:
        sent = send_file(path=path, dataset=dataset, url=url, batch=batch, console=console)
    except (MillraceError, httpx.HTTPError) as exc:
        fail(getattr(exc, "message", None) or str(exc))
    console.print(f"sent {sent} records to dataset '{dataset}'")


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
