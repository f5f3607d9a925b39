"""The options several commands share: where each service is (option, else environment,
else the local default), ``--json``, and who moves an alias and why."""

from __future__ import annotations

import os
from typing import Annotated

import typer

REGISTRY = "http://127.0.0.1:8020"
FEATURES = "http://127.0.0.1:8040"
INGEST = "http://127.0.0.1:8010"
USER = os.environ.get("USER", "cli")

RegistryOpt = Annotated[
    str, typer.Option("--registry", help="registry base URL", envvar="MILLRACE_REGISTRY_URL")
]
FeaturesOpt = Annotated[
    str,
    typer.Option(
        "--features-url", help="features service base URL", envvar="MILLRACE_FEATURES_URL"
    ),
]
IngestOpt = Annotated[
    str, typer.Option("--url", help="ingest base URL", envvar="MILLRACE_INGEST_URL")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON (one document) for scripts")]
ReasonOpt = Annotated[str, typer.Option(help="why (recorded in the audit log)")]
ActorOpt = Annotated[str, typer.Option(help="who")]
