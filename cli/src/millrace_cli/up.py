"""``millrace up``: the embedded platform for your own project, on one machine, no Docker
and no simulator (the factory demo is ``millrace dev``). Data comes from you: ``millrace
ingest file|s3|sql``, ``POST /v1/datasets/{name}/records``, or any Kafka client on
``raw``; each model of the project reaches production as its retraining policy fires."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from millrace_common.project import Project, load_project
from rich.console import Console

from millrace_cli.dev import (
    PLATFORM_ERRORS,
    dev_config,
    embedded_platform,
    one_line,
    production_version,
)
from millrace_cli.errors import CliError
from millrace_cli.platform import PlatformConfig
from millrace_cli.processes import Supervisor
from millrace_cli.render import console as stdout


def up(
    project: Annotated[Path, typer.Option(help="your project folder (its millrace.yaml)")],
    workdir: Annotated[Path, typer.Option(help="state, logs, objects")] = Path(".millrace/up"),
    port_offset: Annotated[
        int,
        typer.Option(help="added to every port (9092, 8010…8060)", min=0, max=56_000),
    ] = 0,
) -> None:
    """Run the platform for your project on this machine (Tansu, SQLite, a local object
    store) until Ctrl-C; say when each of its models reaches production."""
    try:
        spec = load_project(project)
        config = dev_config(workdir.resolve(), project.resolve(), port_offset=port_offset)
        with embedded_platform(config, command="millrace up", console=stdout) as running:
            _tour(stdout, config, spec)
            _watch(config, spec, console=stdout, supervisor=running)
    except PLATFORM_ERRORS as exc:
        raise one_line("millrace up", exc) from None


def _tour(console: Console, config: PlatformConfig, spec: Project) -> None:
    """What to do next, with this run's URLs and key."""
    token = config.tokens.get("user")
    lines = []
    if token:
        lines.append(f"Your key (admin, this run only): export MILLRACE_TOKEN={token}")
    ingest = config.url("ingest")
    for name, dataset in spec.datasets.items():
        fields = ", ".join([dataset.entity, dataset.time, *dataset.fields, *dataset.labels])
        lines.append(
            f"Send dataset '{name}' ({fields}): millrace ingest file DATA.csv --dataset {name} "
            f"--url {ingest}"
        )
    for name, model in spec.models.items():
        lines.append(
            f"Model '{name}' trains on feature set '{model.feature_set}' as its retraining "
            "policy fires (or now: millrace train " + name + ")"
        )
    lines.append(
        f"Web UI: {config.url('registry')}/ui (any user name, the key as the password)"
        "   Ctrl-C stops everything."
    )
    for line in lines:
        console.print(line, soft_wrap=True, markup=False)


def _watch(
    config: PlatformConfig, spec: Project, *, console: Console, supervisor: Supervisor
) -> None:
    """Until Ctrl-C: say each model's new production version; stop when a service exits."""
    announced: dict[str, int] = {}
    with httpx.Client(base_url=config.url("serving"), timeout=5, headers=config.headers()) as sc:
        while True:
            for name in spec.models:
                version = production_version(sc, name)
                if version is not None and announced.get(name) != version:
                    announced[name] = version
                    _announce(console, config, name, version)
            if failed := supervisor.failed():
                raise CliError(f"millrace up: {', '.join(failed)} exited; see {supervisor.log_dir}")
            time.sleep(2.0)


def _announce(console: Console, config: PlatformConfig, model: str, version: int) -> None:
    token = config.tokens.get("user")
    key = f"-H 'Authorization: Bearer {token}' " if token else ""
    console.print(f"[bold green]{model} v{version} is in production[/]")
    console.print(
        f"  curl -s -X POST {config.url('serving')}/v1/models/{model}/predict {key}"
        "-H 'content-type: application/json' -d '{\"entity_ids\": [\"…\"]}'",
        soft_wrap=True,
        markup=False,
    )
