"""``millrace models upload FILE --name NAME``: bring your own ONNX model. The registry
stores the file under its own key (it computes the sha256 and size and opens the model);
the features service cuts a fresh snapshot of the model's feature set, and the trainer
evaluates the upload on its holdout, checks its inputs and the sample predictions, and
registers the version ready or rejected, judged against the baseline and the champion
like a trained one."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

from millrace_cli.client import Service
from millrace_cli.errors import CliError
from millrace_cli.options import FEATURES, REGISTRY, USER, FeaturesOpt, JsonOpt, RegistryOpt
from millrace_cli.render import print_json, say
from millrace_cli.training import follow, report

Doc = dict[str, Any]


def send_upload(
    registry: Service,
    *,
    name: str,
    model: Path,
    samples: Path | bytes | None = None,
    description: str = "",
    actor: str = USER,
) -> Doc:
    """The file (and its samples: a JSON file or its bytes) to the registry; the upload
    it stored."""
    for path in (model, samples):
        if isinstance(path, Path) and not path.is_file():
            raise CliError(f"{path}: no such file")
    with ExitStack() as opened:
        stream = opened.enter_context(model.open("rb"))
        files: dict[str, Any] = {"model": (model.name, stream, "application/octet-stream")}
        if isinstance(samples, Path):
            samples = opened.enter_context(samples.open("rb")).read()
        if samples is not None:
            files["samples"] = ("samples.json", samples, "application/json")
        form = {"description": description, "actor": actor}
        return registry.post_files("models", name, "uploads", files=files, form=form)  # type: ignore[no-any-return]


def request_evaluation(features: Service, *, name: str, upload: Doc, actor: str = USER) -> Doc:
    """A fresh snapshot of the model's feature set and the train request that evaluates
    the upload on it."""
    body = {
        "reason": f"upload of {upload['filename']}",
        "requested_by": actor,
        "upload_id": upload["upload_id"],
    }
    return features.post("models", name, "train-requests", body=body)  # type: ignore[no-any-return]


def upload(
    file: Annotated[Path, typer.Argument(help="the ONNX model")],
    name: Annotated[str, typer.Option("--name", help="the model (declared in the project)")],
    samples: Annotated[
        Path | None,
        typer.Option(
            help="JSON {rows, predictions, probabilities?} the model answered where it was built"
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="kept with the version")] = "",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="follow the evaluation")] = True,
    timeout: Annotated[float, typer.Option(help="seconds --wait waits at most")] = 900.0,
    registry: RegistryOpt = REGISTRY,
    features_url: FeaturesOpt = FEATURES,
    as_json: JsonOpt = False,
) -> None:
    """Upload an ONNX model as a new version of NAME: evaluated on the current holdout,
    registered ready (then judged by the promotion rule) or rejected with the reason."""
    registry_api = Service(registry, timeout=300.0)
    stored = send_upload(
        registry_api, name=name, model=file, samples=samples, description=description
    )
    if not as_json:
        inputs = ", ".join(f"{t['name']} {t['dtype']}{t['shape']}" for t in stored["inputs"])
        say(
            f"uploaded {stored['filename']} for {name}: {stored['size']} bytes, "
            f"sha256 {stored['sha256'][:12]}…, input {inputs}"
            + (f", {stored['samples']} sample rows" if stored["samples"] else "")
        )
    request = request_evaluation(Service(features_url), name=name, upload=stored)
    if not as_json:
        say(f"evaluating it on a fresh snapshot of {request['snapshot']['rows']} rows")
    if not wait:
        if as_json:
            print_json({"upload": stored, "request": request})
        return
    run = follow(registry_api, model=name, request_id=request["request_id"], timeout=timeout)
    report(request=request, run=run, registry=registry_api, as_json=as_json)
    if run["status"] != "succeeded":
        raise typer.Exit(1)
