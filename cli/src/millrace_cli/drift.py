"""``millrace models drift NAME``: how far the model's recent feature rows have moved from
its latest snapshot (PSI per feature, from the features service), and whether the
model's drift policy would retrain it now."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from millrace_cli.catalog import JsonOpt, call, emit, guarded

FEATURES = "http://127.0.0.1:8040"
SHIFT = 0.1
"""PSI from which a feature shows as shifting (0.2 and over: significant)."""


def drift(
    name: str,
    features_url: Annotated[
        str, typer.Option(help="features service base URL", envvar="MILLRACE_FEATURES_URL")
    ] = FEATURES,
    as_json: JsonOpt = False,
) -> None:
    """PSI per feature of the recent window against the latest snapshot."""
    found = guarded(lambda: call("GET", f"{features_url}/v1/models/{name}/drift"))
    emit(found, as_json=as_json, table=drift_table)


def drift_table(found: dict[str, Any]) -> Table:
    window, reference = found["window"], found["reference"]
    policy = found["policy"]
    threshold = policy["psi"] if policy else None
    table = Table(
        "feature",
        "PSI",
        "",
        title=f"{found['model']}: {window['rows']} rows of the last {window['length']} "
        f"vs snapshot {reference['snapshot_id']} ({reference['rows']} rows)",
        caption=_caption(found, threshold),
    )
    for feature, value in found["psi"].items():
        table.add_row(feature, f"{value:.4f}", _mark(value, threshold))
    return table


def _mark(value: float, threshold: float | None) -> str:
    if threshold is not None and value > threshold:
        return "[red]over the policy's threshold[/]"
    if value >= SHIFT:
        return "[yellow]shifting[/]"
    return ""


def _caption(found: dict[str, Any], threshold: float | None) -> str:
    if threshold is None:
        return "no drift policy: measured, never retrains (retrain.drift in millrace.yaml)"
    if found["would_fire"]:
        return f"the policy would retrain now: {found['reason']}"
    return f"policy: PSI over {threshold}; it would not retrain now"
