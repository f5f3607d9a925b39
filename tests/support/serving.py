"""A serving app without Kafka: models loaded into its slots directly, from an in-memory
store and registry; optionally served by uvicorn on a free port (for real HTTP clients)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from millrace_cli.processes import free_port, wait_until
from millrace_common.contracts import AliasTarget
from millrace_common.db import make_engine
from millrace_common.objectstore import MemoryStore
from millrace_serving.adapters.registry import MemoryRegistry
from millrace_serving.app import bootstrap, create_app
from millrace_serving.config import Settings
from millrace_serving.runtime import Runtime

from tests.support.models import FACTORY_FEATURES, build_model

MODEL = "machine-failure"


def serving_runtime(tmp_path: Path, *, publisher: Any = None, **settings: Any) -> Runtime:
    """A runtime whose registry knows versions 1-3 of MODEL (seeds 1-3), none loaded;
    ``publisher`` stands in for the Kafka prediction log."""
    store, registry = MemoryStore(), MemoryRegistry()
    for version in (1, 2, 3):
        artifact = build_model(seed=version)
        registry.versions[(MODEL, version)] = artifact.upload(store, name=MODEL, version=version)
    # its engine is given: no database URL (keys come from a keys file, if any)
    options = {"models": MODEL, "publish_predictions": False, "database_url": "", **settings}
    return bootstrap(
        Settings(**options),
        store=store,
        registry=registry,
        engine=make_engine(f"sqlite:///{tmp_path / 'serving.db'}"),
        publisher=publisher,
    )


def target(runtime: Runtime, version: int, alias: str = "production") -> AliasTarget:
    store = runtime.swapper.store
    return build_model(seed=version).target(store, name=MODEL, version=version, alias=alias)


async def promote(runtime: Runtime, version: int, alias: str = "production") -> None:
    """Load ``version`` under ``alias`` as a model-published event would."""
    t = target(runtime, version, alias)
    assert isinstance(runtime.registry, MemoryRegistry)
    runtime.registry.targets[(MODEL, alias)] = t
    await runtime.swapper.adopt(t)


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """``app`` on 127.0.0.1:<free port> (lifespan off: no Kafka); yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=10, what="the serving app")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def app_of(runtime: Runtime) -> FastAPI:
    return create_app(runtime)


def v2_body(rows: int = 1) -> dict[str, object]:
    """An Open Inference Protocol request body of ``rows`` valid rows."""
    return {
        "inputs": [
            {
                "name": "input",
                "shape": [rows, len(FACTORY_FEATURES)],
                "datatype": "FP64",
                "data": [[0.5] * len(FACTORY_FEATURES)] * rows,
            }
        ]
    }
