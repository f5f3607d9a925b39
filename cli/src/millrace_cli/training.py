"""``millrace train MODEL``: ask for a new version now and, with ``--wait``, follow its run.

By default the features service cuts a fresh snapshot of the model's feature set (the
"on demand" retrain policy) and queues the train request; ``--from-version N`` instead
retrains on the snapshot recorded by version N (sent straight to ``train-requests``)."""

from __future__ import annotations

import json
import os
import time
from typing import Annotated, Any

import httpx
import typer

from millrace_cli.catalog import (
    REGISTRY,
    CliError,
    JsonOpt,
    RegistryOpt,
    _send,
    _train_request,
    call,
    console,
    err,
    fmt,
    guarded,
    metrics_text,
)

FEATURES = "http://127.0.0.1:8040"
FINISHED = ("succeeded", "rejected", "failed")


def train(
    model: str,
    registry: RegistryOpt = REGISTRY,
    features_url: Annotated[
        str, typer.Option(help="features service base URL", envvar="MILLRACE_FEATURES_URL")
    ] = FEATURES,
    broker: Annotated[
        str, typer.Option(envvar="MILLRACE_BROKER", help="broker (only with --from-version)")
    ] = "127.0.0.1:9092",
    from_version: Annotated[
        int | None,
        typer.Option(help="retrain on this version's recorded snapshot instead of a fresh one"),
    ] = None,
    reason: Annotated[str, typer.Option(help="why (kept in the lineage)")] = "manual train request",
    wait: Annotated[bool, typer.Option("--wait", help="follow the run until it ends")] = False,
    timeout: Annotated[float, typer.Option(help="seconds --wait waits at most")] = 900.0,
    as_json: JsonOpt = False,
) -> None:
    """Ask for a new version of MODEL: a fresh snapshot now, trained by the trainer."""
    requested_by = os.environ.get("USER", "cli")
    if from_version is None:
        request = guarded(
            lambda: call(
                "POST",
                f"{features_url}/v1/models/{model}/train-requests",
                json={"reason": reason, "requested_by": requested_by},
            )
        )
    else:
        sent = guarded(
            lambda: _train_request(
                model=model, registry=registry, from_version=from_version, reason=reason
            )
        )
        guarded(lambda: _send(broker, sent))
        request = json.loads(sent.model_dump_json())
    if not as_json:
        snapshot = request["snapshot"]
        console.print(
            f"train request {request['request_id']} queued for {model} "
            f"(snapshot {snapshot['uri']}, {snapshot['rows']} rows)"
        )
    if not wait:
        if as_json:
            console.print_json(json.dumps(request))
        return
    run = guarded(
        lambda: follow(
            registry=registry,
            model=model,
            request_id=request["request_id"],
            timeout=timeout,
            quiet=as_json,
        )
    )
    _report(request=request, run=run, registry=registry, as_json=as_json)
    if run["status"] != "succeeded":
        raise typer.Exit(1)


def follow(
    *, registry: str, model: str, request_id: str, timeout: float, quiet: bool
) -> dict[str, Any]:
    """Poll the registry's runs of ``model`` until the request's run has ended."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    with err.status(f"waiting for the trainer to take {request_id}", spinner="dots") as status:
        while time.monotonic() < deadline:
            run = _run_of(registry=registry, model=model, request_id=request_id)
            if run is not None and run["status"] in FINISHED:
                return run
            if run is not None and not quiet:
                status.update(
                    f"run {run['run_id']} {run['status']} ({time.monotonic() - started:.0f}s)"
                )
            time.sleep(0.5)
    raise CliError(f"no finished run for train request {request_id} after {timeout:.0f}s")


def _run_of(*, registry: str, model: str, request_id: str) -> dict[str, Any] | None:
    """The newest run of the request, or None while the trainer has not reported one."""
    try:
        response = httpx.get(
            f"{registry}/v1/models/{model}/runs", params={"limit": 1000}, timeout=10
        )
    except httpx.HTTPError:
        return None  # the registry may restart while we wait
    if response.status_code == 404:  # the model is registered by its first run
        return None
    if response.status_code >= 400:
        raise CliError(f"HTTP {response.status_code}: {response.text[:300]}")
    return next((r for r in response.json() if r["request_id"] == request_id), None)


def _report(*, request: dict[str, Any], run: dict[str, Any], registry: str, as_json: bool) -> None:
    version = None
    if run["version"] is not None:
        version = guarded(
            lambda: call(
                "GET", f"{registry}/v1/models/{request['model']}/versions/{run['version']}"
            )
        )
    if as_json:
        console.print_json(json.dumps(request | {"run": run, "version": version}, default=str))
        return
    line = f"run {run['run_id']} {run['status']}"
    if version is not None:
        line += (
            f": v{version['version']} {metrics_text(run['metrics'])}; "
            f"aliases {', '.join(version['aliases']) or '-'}; {version['reason']}"
        )
    if run["failure_reason"]:
        line += f"; reason: {run['failure_reason']}"
    line += f" (took {fmt(sum(run['timings'].values()))}s)" if run["timings"] else ""
    (console if run["status"] == "succeeded" else err).print(line)
