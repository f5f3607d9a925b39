"""``millrace models …`` and ``millrace runs …``: the registry's catalog from the terminal
(rich tables, ``--json`` for scripts); ``millrace train`` lives in ``training``."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

REGISTRY = "http://127.0.0.1:8020"
RegistryOpt = Annotated[str, typer.Option(help="registry base URL", envvar="MILLRACE_REGISTRY_URL")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]
console = Console()
err = Console(stderr=True)
runs_app = typer.Typer(
    help="Training runs: every attempt, with or without a version.", no_args_is_help=True
)


class CliError(Exception):
    """A one-line cause for the user; the command exits non-zero."""


def call(method: str, url: str, **kwargs: Any) -> Any:
    try:
        response = httpx.request(method, url, timeout=30, **kwargs)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {url}: {exc}") from None
    if response.status_code >= 400:
        try:
            message = response.json().get("message") or response.text
        except ValueError:
            message = response.text
        raise CliError(f"HTTP {response.status_code}: {message}")
    return response.json()


def guarded(run: Any) -> Any:
    try:
        return run()
    except CliError as exc:
        # soft_wrap: one line whatever the terminal's width, so scripts can grep it
        err.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None


def emit(data: Any, *, as_json: bool, table: Any) -> None:
    if as_json:
        console.print_json(json.dumps(data, default=str))
    else:
        console.print(table(data))


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def metrics_text(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={fmt(v)}" for k, v in sorted(metrics.items())) or "-"


# -- tables --------------------------------------------------------------------------


def model_table(model: dict[str, Any]) -> Table:
    table = Table("field", "value", title=f"model {model['name']}")
    table.add_row("description", model.get("description") or "-")
    table.add_row("latest version", fmt(model.get("latest_version")))
    table.add_row(
        "aliases",
        ", ".join(f"{a}→v{v}" for a, v in sorted(model.get("aliases", {}).items())) or "-",
    )
    table.add_row(
        "tags", ", ".join(f"{k}={v}" for k, v in sorted(model.get("tags", {}).items())) or "-"
    )
    return table


def versions_table(versions: list[dict[str, Any]]) -> Table:
    table = Table("version", "status", "aliases", "metrics", "decision", "created")
    for v in versions:
        table.add_row(
            str(v["version"]),
            v["status"],
            ", ".join(v["aliases"]) or "-",
            metrics_text(v["metrics"]),
            v.get("rejection_reason") or v["reason"],
            str(v["created_at"])[:19],
        )
    return table


def lineage_table(doc: dict[str, Any]) -> Table:
    table = Table("what", "value", title=f"{doc['name']} v{doc['version']} lineage")
    request = doc.get("train_request") or {}
    snapshot = doc.get("snapshot") or {}
    feature_set = doc.get("feature_set") or {}
    spec = doc.get("model_spec") or {}
    env = doc.get("environment") or {}
    rows = [
        (
            "train request",
            f"{request.get('request_id')} by {request.get('requested_by')} "
            f"({request.get('reason')})",
        ),
        (
            "snapshot",
            f"{snapshot.get('uri')} sha256={snapshot.get('sha256')} "
            f"rows={snapshot.get('rows')} cutoff={snapshot.get('cutoff')}",
        ),
        (
            "feature set",
            f"{feature_set.get('name')} v{feature_set.get('version')}: "
            f"{', '.join(feature_set.get('features') or [])}",
        ),
        ("model spec", f"{spec.get('estimator')} {spec.get('params')} seed={doc.get('seed')}"),
        ("metrics", metrics_text(doc.get("metrics") or {})),
        ("champion", metrics_text(doc.get("champion_metrics") or {})),
        ("artifact", f"{doc['artifact']['uri']} sha256={doc['artifact']['sha256']}"),
        ("project", f"{(doc.get('project') or {}).get('git_commit')}"),
        ("environment", f"python {env.get('python')} lock={env.get('lock_sha256')}"),
        ("decision", doc["decision"]["reason"]),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def runs_table(runs: list[dict[str, Any]]) -> Table:
    table = Table("run", "request", "status", "version", "metrics", "timings (s)", "reason")
    for r in runs:
        timings = " ".join(f"{k}={v:.2f}" for k, v in r["timings"].items()) or "-"
        table.add_row(
            r["run_id"],
            r["request_id"],
            r["status"],
            fmt(r["version"]),
            metrics_text(r["metrics"]),
            timings,
            r["failure_reason"] or "-",
        )
    return table


def compare_table(doc: dict[str, Any]) -> Table:
    table = Table("", *[r["run_id"] for r in doc["runs"]], title=f"runs of {doc['name']}")
    table.add_row("status", *[r["status"] for r in doc["runs"]])
    table.add_row("version", *[fmt(r["version"]) for r in doc["runs"]])
    for part in ("params", "metrics", "timings"):
        for key, values in doc[part].items():
            table.add_row(f"{part}.{key}", *[fmt(v) for v in values])
    return table


def reproduce_table(report: dict[str, Any]) -> Table:
    table = Table(
        "metric",
        "original",
        "reproduced",
        "match",
        title=f"{report['name']} v{report['version']} reproduced",
    )
    for name, m in report["metrics"].items():
        table.add_row(
            name, fmt(m["original"]), fmt(m["reproduced"]), "yes" if m["match"] else "[red]NO[/]"
        )
    onnx = report["onnx"]
    table.add_row(
        "onnx outputs",
        f"{onnx['holdout_rows']} holdout rows",
        f"max diff {fmt(onnx.get('max_probability_diff', onnx.get('max_relative_diff')))}"
        f" / tol {onnx['tolerance']:.0e}",
        "yes" if onnx["match"] else "[red]NO[/]",
    )
    for m in report["environment"]["mismatches"]:
        table.add_row(f"env {m['what']}", fmt(m["recorded"]), fmt(m["now"]), "[yellow]differs[/]")
    return table


# -- commands ------------------------------------------------------------------------


def install(app: typer.Typer, models_app: typer.Typer) -> None:
    """Add the catalog commands to the ``millrace`` app."""
    from millrace_cli.drift import drift
    from millrace_cli.training import train

    app.add_typer(runs_app, name="runs")
    app.command("train")(train)
    for name, command in (
        ("show", show),
        ("versions", versions),
        ("promote", promote),
        ("rollback", rollback),
        ("lineage", lineage),
        ("reproduce", reproduce),
        ("drift", drift),
    ):
        models_app.command(name)(command)


def show(name: str, registry: RegistryOpt = REGISTRY, as_json: JsonOpt = False) -> None:
    """One model: description, tags, latest version, aliases."""
    model = guarded(lambda: call("GET", f"{registry}/v1/models/{name}"))
    emit(model, as_json=as_json, table=model_table)


def versions(
    name: str,
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
    status: Annotated[str | None, typer.Option(help="pending|ready|rejected|archived")] = None,
    metric: Annotated[str | None, typer.Option(help="e.g. 'f1>=0.8'")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="key or key=value")] = None,
    alias: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 100,
) -> None:
    """A model's versions, optionally searched."""
    params = {
        k: v
        for k, v in {
            "status": status,
            "metric": metric,
            "tag": tag,
            "alias": alias,
            "limit": limit,
        }.items()
        if v is not None
    }
    found = guarded(lambda: call("GET", f"{registry}/v1/models/{name}/versions", params=params))
    emit(found, as_json=as_json, table=versions_table)


def promote(
    name: str,
    version: int,
    reason: Annotated[str, typer.Option(help="why (recorded in the audit log)")],
    alias: Annotated[str, typer.Option(help="the alias to move")] = "production",
    actor: Annotated[str, typer.Option(help="who")] = os.environ.get("USER", "cli"),
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
) -> None:
    """Point an alias (production by default) at a version: one audited call."""
    moved = guarded(
        lambda: call(
            "POST",
            f"{registry}/v1/models/{name}/aliases/{alias}",
            json={"version": version, "reason": reason, "actor": actor},
        )
    )
    if as_json:
        console.print_json(json.dumps(moved))
        return
    console.print(
        f"{name} {alias}: v{fmt(moved['previous_version'])} → v{moved['version']}"
        + ("" if moved["moved"] else " (already there)")
    )


def rollback(
    name: str,
    reason: Annotated[str, typer.Option(help="why (recorded in the audit log)")],
    to: Annotated[int | None, typer.Option(help="version (default: the previous one)")] = None,
    actor: Annotated[str, typer.Option(help="who")] = os.environ.get("USER", "cli"),
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
) -> None:
    """Production back to an earlier ready version."""
    body = {"reason": reason, "actor": actor} | ({"version": to} if to else {})
    moved = guarded(lambda: call("POST", f"{registry}/v1/models/{name}/rollback", json=body))
    if as_json:
        console.print_json(json.dumps(moved))
        return
    console.print(
        f"{name} production rolled back: v{moved['previous_version']} → v{moved['version']}"
    )


def lineage(
    name: str, version: int, registry: RegistryOpt = REGISTRY, as_json: JsonOpt = False
) -> None:
    """Where a version came from: request, snapshot, feature set, spec, environment."""
    doc = guarded(lambda: call("GET", f"{registry}/v1/models/{name}/versions/{version}/lineage"))
    emit(doc, as_json=as_json, table=lineage_table)


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
    report = guarded(
        lambda: _reproduce(
            name=name,
            version=version,
            registry=registry,
            object_store=object_store,
            project_root=project_root,
            quiet=as_json,
        )
    )
    emit(report, as_json=as_json, table=reproduce_table)
    if not report["reproduced"]:
        raise typer.Exit(1)


def _reproduce(
    *,
    name: str,
    version: int,
    registry: str,
    object_store: str,
    project_root: str | None,
    quiet: bool,
) -> dict[str, Any]:
    try:
        from millrace_common.errors import MillraceError
        from millrace_common.objectstore import open_store
        from millrace_trainer.reproduce import reproduce as run
    except ImportError as exc:
        raise CliError(f"reproduce needs the trainer installed (millrace-trainer): {exc}") from None
    doc = call("GET", f"{registry}/v1/models/{name}/versions/{version}")
    with console.status("reproducing", spinner="dots") as status:

        def progress(step: str) -> None:
            if not quiet:
                status.update(step)

        try:
            return run(
                version=doc,
                store=open_store(object_store),
                project_root=project_root,
                progress=progress,
            )
        except MillraceError as exc:
            raise CliError(exc.message) from None


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
    found = guarded(lambda: call("GET", f"{registry}/v1/models/{name}/runs", params=params))
    emit(found, as_json=as_json, table=runs_table)


@runs_app.command("compare")
def runs_compare(
    name: str,
    run: Annotated[list[str], typer.Argument(help="two or more run ids")],
    registry: RegistryOpt = REGISTRY,
    as_json: JsonOpt = False,
) -> None:
    """Runs side by side: params, metrics and timings."""
    doc = guarded(
        lambda: call("GET", f"{registry}/v1/models/{name}/runs/compare", params={"run": run})
    )
    emit(doc, as_json=as_json, table=compare_table)


def _train_request(*, model: str, registry: str, from_version: int | None, reason: str) -> Any:
    from millrace_common.contracts import SnapshotRef, TrainRequest

    if from_version is None:
        current = call("GET", f"{registry}/v1/models/{model}")
        from_version = current["aliases"].get("production") or current["latest_version"]
        if from_version is None:
            raise CliError(f"model '{model}' has no version whose snapshot could be reused")
    version = call("GET", f"{registry}/v1/models/{model}/versions/{from_version}")
    snapshot = (version.get("lineage") or {}).get("snapshot")
    if not snapshot:
        raise CliError(f"{model} v{from_version} records no snapshot")
    return TrainRequest(
        request_id=f"manual-{uuid.uuid4().hex[:12]}",
        model=model,
        snapshot=SnapshotRef.model_validate({k: snapshot.get(k) for k in SnapshotRef.model_fields}),
        reason=reason,
        requested_by=os.environ.get("USER", "cli"),
        requested_at=datetime.now(UTC),
    )


def _send(broker: str, request: Any) -> None:
    import asyncio

    from aiokafka.errors import KafkaError
    from millrace_common.contracts import DLQ, TRAIN_REQUESTS
    from millrace_common.messaging import Envelope, Producer, ensure_topics

    async def send() -> None:
        await ensure_topics(broker, [TRAIN_REQUESTS, DLQ])
        producer = Producer(broker, source="cli")
        await producer.start()
        try:
            await producer.send(
                TRAIN_REQUESTS,
                request,
                key=request.model,
                envelope=Envelope.new(type="millrace.train.requested", source="cli"),
            )
        finally:
            await producer.stop()

    try:
        asyncio.run(asyncio.wait_for(send(), timeout=30))
    except (KafkaError, OSError, TimeoutError) as exc:
        raise CliError(f"cannot send to broker {broker}: {exc!r}") from None
