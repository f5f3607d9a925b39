"""``millrace train MODEL``: ask for a new version now and, with ``--wait``, follow its run.

By default the features service cuts a fresh snapshot of the model's feature set (the
"on demand" retrain policy) and queues the train request; ``--from-version N`` instead
retrains on the snapshot recorded by version N (sent straight to ``train-requests``)."""

from __future__ import annotations

import json
import time
import uuid
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from millrace_cli.client import Service, ServiceError, Unreachable
from millrace_cli.errors import CliError
from millrace_cli.options import FEATURES, REGISTRY, USER, FeaturesOpt, JsonOpt, RegistryOpt
from millrace_cli.render import err, fmt, metrics_text, print_json, say

if TYPE_CHECKING:
    from millrace_common.contracts import TrainRequest

FINISHED = ("succeeded", "rejected", "failed")
Doc = dict[str, Any]


def train(
    model: str,
    registry: RegistryOpt = REGISTRY,
    features_url: FeaturesOpt = FEATURES,
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
    registry_api = Service(registry)
    if from_version is None:
        body = {"reason": reason, "requested_by": USER}
        request = Service(features_url).post("models", model, "train-requests", body=body)
    else:
        sent = request_from_version(
            registry_api, model=model, from_version=from_version, reason=reason
        )
        send(broker, sent)
        request = json.loads(sent.model_dump_json())
    if not as_json:
        snapshot = request["snapshot"]
        say(
            f"train request {request['request_id']} queued for {model} "
            f"(snapshot {snapshot['uri']}, {snapshot['rows']} rows)"
        )
    if not wait:
        if as_json:
            print_json(request)
        return
    run = follow(registry_api, model=model, request_id=request["request_id"], timeout=timeout)
    report(request=request, run=run, registry=registry_api, as_json=as_json)
    if run["status"] != "succeeded":
        raise typer.Exit(1)


def follow(
    registry: Service, *, model: str, request_id: str, timeout: float, spinner: bool = True
) -> Doc:
    """Poll the registry's runs of ``model`` until the request's run has ended (with a
    spinner on stderr, unless a library caller asks for none)."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    waiting = f"waiting for the trainer to take {request_id}"
    with err.status(waiting, spinner="dots") if spinner else nullcontext() as status:
        while time.monotonic() < deadline:
            run = run_of(registry, model=model, request_id=request_id)
            if run is not None and run["status"] in FINISHED:
                return run
            if run is not None and status is not None:
                status.update(
                    f"run {run['run_id']} {run['status']} ({time.monotonic() - started:.0f}s)"
                )
            time.sleep(0.5)
    raise CliError(f"no finished run for train request {request_id} after {timeout:.0f}s")


def run_of(registry: Service, *, model: str, request_id: str) -> Doc | None:
    """The newest run of the request, or None while the trainer has not reported one."""
    try:
        runs = registry.get("models", model, "runs", params={"limit": 1000})
    except Unreachable:
        return None  # the registry may restart while we wait
    except ServiceError as exc:
        if exc.status == 404:  # the model is registered by its first run
            return None
        raise
    return next((r for r in runs if r["request_id"] == request_id), None)


def report(*, request: Doc, run: Doc, registry: Service, as_json: bool) -> None:
    version = None
    if run["version"] is not None:
        version = registry.get("models", request["model"], "versions", run["version"])
    if as_json:
        print_json(request | {"run": run, "version": version})
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
    say(line, to_err=run["status"] != "succeeded")


def request_from_version(
    registry: Service, *, model: str, from_version: int, reason: str
) -> TrainRequest:
    """A train request on the snapshot that version ``from_version`` recorded."""
    from millrace_common.contracts import SnapshotRef, TrainRequest
    from pydantic import ValidationError

    version = registry.get("models", model, "versions", from_version)
    recorded = (version.get("lineage") or {}).get("snapshot")
    if not recorded:
        raise CliError(f"{model} v{from_version} records no snapshot")
    try:
        snapshot = SnapshotRef.model_validate(
            {k: recorded.get(k) for k in SnapshotRef.model_fields}
        )
    except ValidationError as exc:
        raise CliError(f"{model} v{from_version} records an incomplete snapshot: {exc}") from None
    return TrainRequest(
        request_id=f"manual-{uuid.uuid4().hex[:12]}",
        model=model,
        snapshot=snapshot,
        reason=reason,
        requested_by=USER,
        requested_at=datetime.now(UTC),
    )


def send(broker: str, request: TrainRequest) -> None:
    """The request onto ``train-requests``, keyed by its model."""
    import asyncio

    from aiokafka.errors import KafkaError
    from millrace_common.contracts import DLQ, EVENT_TYPES, TRAIN_REQUESTS
    from millrace_common.messaging import Envelope, Producer, ensure_topics

    async def produce() -> None:
        await ensure_topics(broker, [TRAIN_REQUESTS, DLQ])
        producer = Producer(broker, source="cli")
        await producer.start()
        try:
            await producer.send(
                TRAIN_REQUESTS,
                request,
                key=request.model,
                envelope=Envelope.new(type=EVENT_TYPES[TRAIN_REQUESTS], source="cli"),
            )
        finally:
            await producer.stop()

    try:
        asyncio.run(asyncio.wait_for(produce(), timeout=30))
    except (KafkaError, OSError, TimeoutError) as exc:
        raise CliError(f"cannot send to broker {broker}: {exc!r}") from None
