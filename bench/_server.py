"""Millrace serving as the benchmark runs it: the real app (routes, guard, data plane,
swapper) without Kafka or a registry, models loaded straight into its slots. Adds two
bench-only routes: ``POST /bench/noop`` (reads the body, answers a constant) and
``POST /bench/swap/{name}`` (hot-swaps production to the other of versions 1 and 2).

    python -m bench._server PORT
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request, Response
from millrace_common.contracts import AliasTarget
from millrace_common.db import make_engine
from millrace_common.objectstore import MemoryStore, sha256_hex
from millrace_serving.adapters.registry import MemoryRegistry
from millrace_serving.app import bootstrap, create_app
from millrace_serving.config import Settings
from millrace_serving.runtime import ServingRuntime

from bench._model import fitted

PLAIN, BATCHED = "machine-failure", "machine-failure-batched"
BATCHING = f"{BATCHED}:2ms:64"


def targets(store: MemoryStore) -> dict[tuple[str, int], AliasTarget]:
    found = {}
    for version in (1, 2):
        model = fitted(seed=version)
        for name in (PLAIN, BATCHED):
            key = f"models/{name}/{version}/model.onnx"
            store.put(key, model.onnx)
            found[(name, version)] = AliasTarget(
                name=name,
                version=version,
                alias="production",
                artifact_uri=store.uri(key),
                sha256=sha256_hex(model.onnx),
                size=len(model.onnx),
                model_schema=model.schema,
            )
    return found


def bench_app(runtime: ServingRuntime, found: dict[tuple[str, int], AliasTarget]) -> FastAPI:
    app = create_app(runtime)
    swapper = runtime.follower.swapper

    @app.post("/bench/noop")
    async def noop(request: Request) -> Response:
        await request.body()
        return Response(b'{"ok":true}', media_type="application/json")

    @app.post("/bench/swap/{name}")
    async def swap(name: str) -> Response:
        current = swapper.slots.get(name).version
        outcome = await swapper.apply(found[(name, 3 - current)])
        return Response(f'{{"outcome":"{outcome}"}}'.encode(), media_type="application/json")

    return app


def main(port: int) -> None:
    store = MemoryStore()
    found = targets(store)
    settings = Settings(models=f"{PLAIN},{BATCHED}", publish_predictions=False, batching=BATCHING)
    engine = make_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}")
    runtime = bootstrap(settings, store=store, registry=MemoryRegistry(), engine=engine)
    for name in (PLAIN, BATCHED):
        asyncio.run(runtime.follower.swapper.apply(found[(name, 1)]))
    uvicorn.run(
        bench_app(runtime, found),
        host="127.0.0.1",
        port=port,
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
