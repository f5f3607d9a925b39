"""Millrace serving as the benchmark runs it: the real app (routes, guard, data plane,
swapper) without Kafka or a registry, models loaded straight into its slots. Adds two
bench-only routes: ``POST /bench/noop`` (reads the body, answers a constant; matched
first, through the scoring routes' route class, so it is the floor of this server),
``POST /bench/noop-fastapi`` (the same as a plain FastAPI route, matched last) and
``POST /bench/swap/{name}`` (hot-swaps production to the other of versions 1 and 2).

    python -m bench._server PORT
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from millrace_common.contracts import AliasTarget
from millrace_common.db import make_engine
from millrace_common.http import DirectRoute, freeze_startup_heap
from millrace_common.objectstore import MemoryStore
from millrace_serving.adapters.registry import MemoryRegistry
from millrace_serving.app import bootstrap, create_app
from millrace_serving.config import Settings
from millrace_serving.runtime import Runtime

from tests.support.models import Kind, fit

PLAIN, BATCHED = "machine-failure", "machine-failure-batched"
FOREST, FOREST_BATCHED = "machine-failure-forest", "machine-failure-forest-batched"
MLP, MLP_BATCHED = "machine-failure-mlp", "machine-failure-mlp-batched"
BATCHING = ",".join(f"{name}:2ms:64" for name in (BATCHED, FOREST_BATCHED, MLP_BATCHED))
SERVED: tuple[tuple[int, Kind, tuple[str, str]], ...] = (
    (1, "logistic", (PLAIN, BATCHED)),
    (2, "logistic", (PLAIN, BATCHED)),
    (1, "forest", (FOREST, FOREST_BATCHED)),
    (1, "mlp", (MLP, MLP_BATCHED)),
)


def targets(store: MemoryStore) -> dict[tuple[str, int], AliasTarget]:
    """Versions 1 and 2 of the light model (the swap bench flips between them), version
    1 of the forest and of the MLP; each under a plain and a batched name."""
    found = {}
    for version, kind, names in SERVED:
        model = fit(seed=version, kind=kind)
        for name in names:
            found[(name, version)] = model.upload(store, name=name, version=version)
    return found


def bench_app(runtime: Runtime, found: dict[tuple[str, int], AliasTarget]) -> FastAPI:
    app = create_app(runtime)
    swapper = runtime.swapper

    async def noop(request: Request) -> Response:
        await request.body()
        return Response(b'{"ok":true}', media_type="application/json")

    # the cheapest route this server can have: the same route class as the scoring
    # routes, matched first (routes are matched in order, each a cost per request)
    app.router.add_api_route(
        "/bench/noop", noop, methods=["POST"], route_class_override=DirectRoute
    )
    app.router.routes.insert(0, app.router.routes.pop())

    @app.post("/bench/noop-fastapi")
    async def noop_fastapi(request: Request) -> Response:
        """The no-op the targets were first measured against: a plain FastAPI route,
        matched after every other route."""
        await request.body()
        return Response(b'{"ok":true}', media_type="application/json")

    @app.post("/bench/swap/{name}")
    async def swap(name: str) -> Response:
        current = swapper.slots.get(name).version
        outcome = await swapper.apply(found[(name, 3 - current)])
        return Response(f'{{"outcome":"{outcome}"}}'.encode(), media_type="application/json")

    return app


def main(port: int, keys_file: str) -> None:
    """Serving on ``port``, checking keys from ``keys_file`` as it does by default
    (``off``: authentication off, for the comparison)."""
    store = MemoryStore()
    found = targets(store)
    names = (PLAIN, BATCHED, FOREST, FOREST_BATCHED, MLP, MLP_BATCHED)
    auth: dict[str, Any] = (
        {"auth": "off"}
        if keys_file == "off"
        else {"auth": "required", "auth_keys_file": keys_file, "database_url": ""}
    )
    settings = Settings(
        models=",".join(names), publish_predictions=False, batching=BATCHING, **auth
    )
    engine = make_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}")
    runtime = bootstrap(settings, store=store, registry=MemoryRegistry(), engine=engine)
    for name in names:
        asyncio.run(runtime.swapper.apply(found[(name, 1)]))
    freeze_startup_heap()  # as Runtime.start does once its models are loaded
    uvicorn.run(
        bench_app(runtime, found),
        host="127.0.0.1",
        port=port,
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
