"""``millrace models …``: the registry's catalog from the terminal: models, versions,
aliases and their audit log, lineage, and reproducing a version (``models drift`` is in
``drift``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from millrace_cli.client import Service
from millrace_cli.errors import CliError
from millrace_cli.options import REGISTRY, USER, ActorOpt, JsonOpt, ReasonOpt, RegistryOpt
from millrace_cli.render import emit, err, fmt, print_json, say
from millrace_cli.views import (
    audit_grid,
    lineage_grid,
    model_grid,
    models_grid,
    monitoring_grid,
    reproduce_grid,
    versions_grid,
)

models_app = typer.Typer(help="The model catalog.", no_args_is_help=True)
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="key or key=value; repeatable")]


def query(**params: Any) -> dict[str, Any]:
    """The options a user gave, as query parameters."""
    return {k: v for k, v in params.items() if v is not None}


@models_app.command("list")
def models_list(
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
    name: Annotated[str | None, typer.Option(help="part of the name")] = None,
    tag: TagOpt = None,
    alias: Annotated[str | None, typer.Option(help="only models with this alias")] = None,
    limit: Annotated[int, typer.Option()] = 100,
) -> None:
    """The registered models and where their aliases point."""
    found = Service(registry).get(
        "models", params=query(name=name, tag=tag, alias=alias, limit=limit)
    )
    emit(found, as_json=as_json, view=models_grid)


@models_app.command("show")
def show(name: str, registry: RegistryOpt = REGISTRY, as_json: JsonOpt = False) -> None:
    """One model: description, tags, latest version, aliases."""
    emit(Service(registry).get("models", name), as_json=as_json, view=model_grid)


@models_app.command("versions")
def versions(
    name: str,
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
    status: Annotated[str | None, typer.Option(help="pending|ready|rejected|archived")] = None,
    metric: Annotated[str | None, typer.Option(help="e.g. 'f1>=0.8'")] = None,
    tag: TagOpt = None,
    alias: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 100,
) -> None:
    """A model's versions, optionally searched."""
    params = query(status=status, metric=metric, tag=tag, alias=alias, limit=limit)
    found = Service(registry).get("models", name, "versions", params=params)
    emit(found, as_json=as_json, view=versions_grid)


@models_app.command("audit")
def audit(
    name: str,
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option()] = 200,
) -> None:
    """Every alias move of a model, newest first: who, when, why."""
    found = Service(registry).get("models", name, "audit", params={"limit": limit})
    emit(found, as_json=as_json, view=audit_grid)


@models_app.command("monitor")
def monitor(
    name: str,
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
    since: Annotated[str | None, typer.Option(help="ISO 8601 (default: a day ago)")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 (default: now)")] = None,
    window: Annotated[
        str | None, typer.Option(help="30s, 10m, 1h, 1d (default: the spec's)")
    ] = None,
) -> None:
    """Live quality from labelled predictions: per version, alias and site, then per
    window; and what became of the labels."""
    params = query(since=since, until=until, window=window)
    found = Service(registry).get("models", name, "monitoring", params=params)
    emit(found, as_json=as_json, view=monitoring_grid)


@models_app.command("promote")
def promote(
    name: str,
    version: int,
    reason: ReasonOpt,
    alias: Annotated[str, typer.Option(help="the alias to move")] = "production",
    actor: ActorOpt = USER,
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
) -> None:
    """Point an alias (production by default) at a version: one audited call."""
    body = {"version": version, "reason": reason, "actor": actor}
    moved = Service(registry).post("models", name, "aliases", alias, body=body)
    if as_json:
        print_json(moved)
        return
    say(
        f"{name} {alias}: v{fmt(moved['previous_version'])} → v{moved['version']}"
        + ("" if moved["moved"] else " (already there)")
    )


@models_app.command("rollback")
def rollback(
    name: str,
    reason: ReasonOpt,
    to: Annotated[int | None, typer.Option(help="version (default: the previous one)")] = None,
    actor: ActorOpt = USER,
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
) -> None:
    """Production back to an earlier ready version."""
    body = {"reason": reason, "actor": actor} | ({"version": to} if to else {})
    moved = Service(registry).post("models", name, "rollback", body=body)
    if as_json:
        print_json(moved)
        return
    say(f"{name} production rolled back: v{moved['previous_version']} → v{moved['version']}")


@models_app.command("lineage")
def lineage(
    name: str, version: int, registry: RegistryOpt = REGISTRY, as_json: JsonOpt = False
) -> None:
    """Where a version came from: request, snapshot, feature set, spec, environment."""
    doc = Service(registry).get("models", name, "versions", version, "lineage")
    emit(doc, as_json=as_json, view=lineage_grid)


@models_app.command("reproduce")
def reproduce(
    name: str,
    version: int,
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
    object_store: Annotated[
        str, typer.Option(envvar="MILLRACE_OBJECT_STORE", help="object-store URL")
    ] = "file://./.millrace/objects",
    project_root: Annotated[
        str | None,
        typer.Option(help="folder of the project's own code (default: the recorded one)"),
    ] = None,
) -> None:
    """Retrain a version from its recorded snapshot, spec and seed; compare side by side.
    Exits 1 when metrics or ONNX outputs differ."""
    recorded = Service(registry).get("models", name, "versions", version)
    report = retrain(version=recorded, object_store=object_store, project_root=project_root)
    emit(report, as_json=as_json, view=reproduce_grid)
    if not report["reproduced"]:
        raise typer.Exit(1)


def retrain(*, version: dict[str, Any], object_store: str, project_root: str | None) -> Any:
    """The trainer's reproduction of a registered version, its steps on stderr's spinner."""
    try:
        from millrace_common.objectstore import open_store
        from millrace_trainer.reproduce import reproduce as run
    except ImportError as exc:
        raise CliError(f"reproduce needs the trainer installed (millrace-trainer): {exc}") from None
    with err.status("reproducing", spinner="dots") as status:
        return run(
            version=version,
            store=open_store(object_store),
            project_root=project_root,
            progress=status.update,
        )
