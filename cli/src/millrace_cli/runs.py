"""``millrace runs …``: a model's training runs, every attempt with or without a version."""

from __future__ import annotations

from typing import Annotated

import typer

from millrace_cli.client import Service
from millrace_cli.options import REGISTRY, JsonOpt, RegistryOpt
from millrace_cli.render import emit
from millrace_cli.views import compare_grid, runs_grid

runs_app = typer.Typer(
    help="Training runs: every attempt, with or without a version.", no_args_is_help=True
)


@runs_app.command("list")
def runs_list(
    name: str,
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
    status: Annotated[str | None, typer.Option(help="running|succeeded|rejected|failed")] = None,
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """A model's training runs, newest first."""
    params = {"limit": limit} | ({"status": status} if status else {})
    found = Service(registry).get("models", name, "runs", params=params)
    emit(found, as_json=as_json, view=runs_grid)


@runs_app.command("compare")
def runs_compare(
    name: str,
    run: Annotated[list[str], typer.Argument(help="two or more run ids")],
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
) -> None:
    """Runs side by side: params, metrics and timings."""
    doc = Service(registry).get("models", name, "runs", "compare", params={"run": run})
    emit(doc, as_json=as_json, view=compare_grid)
