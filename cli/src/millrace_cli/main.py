"""The ``millrace`` command, assembled from its command groups; a failing command prints
one line and exits 1 (``errors.ErrorBoundary``)."""

from __future__ import annotations

import typer

from millrace_cli.batch import score
from millrace_cli.db import db_app
from millrace_cli.dev import dev
from millrace_cli.drift import drift
from millrace_cli.errors import ErrorBoundary
from millrace_cli.ingest import ingest_app
from millrace_cli.keys import keys_app
from millrace_cli.models import models_app
from millrace_cli.runs import runs_app
from millrace_cli.scaffold import init
from millrace_cli.sites import sites_app
from millrace_cli.training import train
from millrace_cli.up import up
from millrace_cli.uploading import upload

app = typer.Typer(
    cls=ErrorBoundary,
    help="Millrace: an event-driven ML platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("dev")(dev)
app.command("up")(up)
app.command("init")(init)
app.command("train")(train)
app.command("score")(score)
app.add_typer(db_app, name="db")
app.add_typer(ingest_app, name="ingest")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(runs_app, name="runs")
app.add_typer(sites_app, name="sites")
models_app.command("drift")(drift)
models_app.command("upload")(upload)

if __name__ == "__main__":
    app()
