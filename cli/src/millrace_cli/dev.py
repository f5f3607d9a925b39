"""``millrace dev``: the embedded platform on one machine, no Docker."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import httpx
import typer
from millrace_common.errors import MillraceError
from rich.console import Console

from millrace_cli.client import Service, error_line
from millrace_cli.errors import CliError
from millrace_cli.platform import (
    DEFAULT_PORTS,
    PlatformConfig,
    edge_agent_spec,
    provision_keys,
    provision_signing,
    start_platform,
)
from millrace_cli.processes import Supervisor, ephemeral_ports, port_open
from millrace_cli.render import console as stdout
from millrace_cli.simulator import factory_records, take

MODEL = "machine-failure"
SITE = "dev-site"


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
    try:
        run_dev(
            workdir=workdir.resolve(),
            project=project.resolve(),
            batch=batch,
            interval=interval,
            console=stdout,
            port_offset=port_offset,
        )
    except PLATFORM_ERRORS as exc:
        raise one_line("millrace dev", exc) from None


def dev_config(workdir: Path, project: Path, *, port_offset: int = 0) -> PlatformConfig:
    database = os.environ.get("MILLRACE_DATABASE_URL") or f"sqlite:///{workdir / 'millrace.db'}"
    return PlatformConfig(
        database_url=database,
        object_store=f"file://{workdir / 'objects'}",
        project=project,
        workdir=workdir,
        ports={name: port + port_offset for name, port in DEFAULT_PORTS.items()},
    )


def run_dev(
    *,
    workdir: Path,
    project: Path,
    batch: int,
    interval: float,
    console: Console,
    port_offset: int = 0,
) -> None:
    config = dev_config(workdir, project, port_offset=port_offset)
    with embedded_platform(config, command="millrace dev", console=console, site=SITE) as running:
        _simulate(config, batch=batch, interval=interval, console=console, supervisor=running)


@contextmanager
def embedded_platform(
    config: PlatformConfig, *, command: str, console: Console, site: str | None = None
) -> Iterator[Supervisor]:
    """The platform of ``config`` started on this machine (its ports checked first, whether
    it resumes earlier state said, keys made for this run, and for ``site``), its
    supervisor handed to the body; Ctrl-C or SIGTERM ends the body, and everything
    started is stopped whatever ends it."""
    busy = [f"{n} ({p})" for n, p in config.ports.items() if port_open(p)]
    if busy:
        raise CliError(
            f"{command}: ports already in use: {', '.join(busy)} (--port-offset moves them all)"
        )
    config.workdir.mkdir(parents=True, exist_ok=True)
    console.print(resume_note(config.workdir, config.database_url))
    ephemeral = ephemeral_ports()
    if any(port in ephemeral for port in config.ports.values()):
        console.print(
            f"note: some ports are in {ephemeral.start}–{ephemeral.stop - 1}, where the kernel"
            " picks ports for outgoing connections; one may be taken before its service binds"
            " it (a --port-offset below"
            f" {ephemeral.start - max(DEFAULT_PORTS.values())} avoids that)"
        )
    # stop as on Ctrl-C when a manager asks (SIGTERM), and on Ctrl-C even when this process
    # was started with SIGINT ignored (a background job of a script inherits that)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    supervisor = Supervisor(config.workdir / "logs")
    try:
        with console.status("starting Tansu and the services…"):
            provision_keys(config, site=site)
            provision_signing(config)
            start_platform(supervisor, config)
        console.print(f"[green]platform up[/] — logs in {supervisor.log_dir}")
        yield supervisor
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        # a second Ctrl-C (or the signal uv forwards) must not cut the clean-up short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.stop_all()
        console.print("stopped")


def one_line(command: str, exc: Exception) -> CliError:
    """A platform command's failure as the one line the CLI prints."""
    cause = getattr(exc, "message", None) or str(exc) or repr(exc)
    return CliError(f"{command}: {cause}".splitlines()[0])


PLATFORM_ERRORS = (httpx.HTTPError, RuntimeError, TimeoutError, MillraceError)
"""What starting or following the platform can fail with, each a one-line exit."""


def resume_note(workdir: Path, database_url: str) -> str:
    """Say whether this run resumes the last one: the broker (in memory) always starts
    empty; the database and the object store keep what earlier runs wrote, and the
    feature windows go on from the database's rows, so a restart resumes exactly."""
    sqlite = database_url.startswith("sqlite")
    kept = any(workdir.glob("millrace*.db")) if sqlite else True
    if not kept:
        return "starting clean: no earlier state in " + str(workdir)
    where = str(workdir) if sqlite else "MILLRACE_DATABASE_URL"
    return (
        f"resuming the state in {where}: models, runs and feature rows are kept and feature "
        "windows go on from them; the broker starts empty (rm -r the folder to start clean)"
    )


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _start_edge_site(config: PlatformConfig, supervisor: Supervisor) -> None:
    """Once the model exists: the demo site follows its production alias."""
    registry = Service(config.url("registry"), timeout=10, headers=config.headers())
    try:
        registry.put("sites", SITE, "deployments", MODEL, body={"alias": "production"})
    except CliError as exc:
        raise CliError(f"millrace dev: deploying {MODEL} to {SITE}: {exc}") from None
    # the site reads its manifest and models through the registry with its own key: it
    # holds no key to the object store
    through_registry = f"registry+{config.url('registry')}"
    supervisor.start(edge_agent_spec(config, site=SITE, object_store=through_registry))


def _simulate(
    config: PlatformConfig, *, batch: int, interval: float, console: Console, supervisor: Supervisor
) -> None:
    stream = factory_records()
    announced: int | None = None
    sent = 0
    with (
        httpx.Client(
            base_url=config.url("ingest"), timeout=30, headers=config.headers("simulator")
        ) as ingest,
        httpx.Client(base_url=config.url("serving"), timeout=5, headers=config.headers()) as sc,
    ):
        while True:
            response = ingest.post(
                "/v1/datasets/machines/records", json={"records": take(stream, batch)}
            )
            if response.status_code >= 400:
                raise CliError(f"millrace dev: ingest answered {error_line(response)}")
            sent += batch
            version = production_version(sc, MODEL)
            if version is not None and version != announced:
                if announced is None:
                    _start_edge_site(config, supervisor)
                    _announce(console, config, version, sent)
                else:
                    console.print(f"{MODEL} v{version} is in production ({sent} records)")
                announced = version
            if failed := supervisor.failed():
                raise CliError(
                    f"millrace dev: {', '.join(failed)} exited; see {supervisor.log_dir}"
                )
            time.sleep(interval)


def production_version(serving: httpx.Client, model: str) -> int | None:
    """The production version serving answers with now, or None (none yet, or serving
    away). Serving's, not the registry's: the registry answers a promotion a moment before
    serving has loaded it, and a prediction asked for in between is a 404."""
    try:
        response = serving.get("/v1/models")
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    found = [
        m["version"] for m in response.json() if (m["name"], m["alias"]) == (model, "production")
    ]
    return int(found[0]) if found else None


def _announce(console: Console, config: PlatformConfig, version: int, sent: int) -> None:
    token = config.tokens.get("user")
    key = f"-H 'Authorization: Bearer {token}' " if token else ""
    console.print(
        f"\n[bold green]{MODEL} v{version} is in production[/] "
        f"({sent} records ingested). Ask for a prediction:\n"
    )
    console.print(
        f"  curl -s -X POST {config.url('serving')}/v1/models/{MODEL}/predict {key}"
        "-H 'content-type: application/json' -d '{\"entity_ids\": [\"m-003\"]}'",
        soft_wrap=True,
        markup=False,
    )
    console.print(
        f"  curl -s {key}{config.url('registry')}/v1/models/{MODEL}/aliases/production",
        soft_wrap=True,
        markup=False,
    )
    console.print(
        f"  edge agent ({SITE}): curl -s -X POST "
        f"{config.url('edge-agent')}/v1/models/{MODEL}/predict {key}"
        "-H 'content-type: application/json' -d '{\"instances\": [...]}'\n",
        soft_wrap=True,
        markup=False,
    )
    if token:
        console.print(
            f"Your key (admin, this run only): export MILLRACE_TOKEN={token}\n"
            f"Web UI: {config.url('registry')}/ui (any user name, the key as the password)"
            "   Ctrl-C stops everything.",
            soft_wrap=True,
            markup=False,
        )
        return
    console.print(f"Web UI: {config.url('registry')}/ui   Ctrl-C stops everything.")
