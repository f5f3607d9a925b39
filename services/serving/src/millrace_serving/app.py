"""Serving's entrypoint: the composition root, the FastAPI app and ``main``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from millrace_common.dataplane import DataPlane
from millrace_common.db import make_engine
from millrace_common.http import health_router, include_flat, install_error_handlers, telemetry
from millrace_common.inference_protocol import v2_router
from millrace_common.logs import configure_logging
from millrace_common.objectstore import ObjectStore, open_store
from millrace_common.predict_api import predict_router
from millrace_common.scoring import ModelSlots
from sqlalchemy import Engine

from millrace_serving.adapters.online_store import OnlineFeatures
from millrace_serving.adapters.registry import HttpRegistry, Registry
from millrace_serving.admin import admin_router
from millrace_serving.batching import Batcher, parse_batching
from millrace_serving.config import Settings
from millrace_serving.follow import ModelFollower
from millrace_serving.guard import Guard, parse_api_keys
from millrace_serving.runtime import ServingRuntime
from millrace_serving.swap import Served, Swapper
from millrace_serving.traffic import TrafficSelector, parse_policies
from millrace_serving.traffic_sync import TrafficFollower, traffic_router


def bootstrap(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    registry: Registry | None = None,
    engine: Engine | None = None,
) -> ServingRuntime:
    slots = ModelSlots()
    served = Served(models=settings.model_names, aliases=settings.alias_names)
    swapper = Swapper(
        slots=slots,
        store=store or open_store(settings.object_store, create_bucket=False),
        served=served,
    )
    registry = registry or HttpRegistry(settings.registry_url)
    engine = engine or make_engine(settings.database_url)
    overrides = parse_policies(settings.traffic)
    traffic = TrafficFollower(
        selector=TrafficSelector(slots, overrides),
        registry=registry,
        swapper=swapper,
        overrides=overrides,
    )
    return ServingRuntime(
        settings=settings,
        slots=slots,
        registry=registry,
        follower=ModelFollower(swapper=swapper, registry=registry, pins=settings.pinned_versions),
        online=OnlineFeatures(engine),
        engine=engine,
        traffic=traffic,
    )


def create_app(runtime: ServingRuntime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="millrace-serving", lifespan=lifespan, telemetry=telemetry())
    install_error_handlers(app)
    settings = runtime.settings
    plane = data_plane(runtime)
    lookup = runtime.online.lookup if runtime.online is not None else None
    # routes are matched in order, each a cost on every request: the scoring routes first
    include_flat(app, predict_router(runtime.slots, lookup=lookup, plane=plane))
    include_flat(app, v2_router(plane, ready=runtime.ready, server="millrace-serving"))
    app.include_router(health_router(runtime.ready))
    app.include_router(admin_router(runtime.follower))
    if runtime.traffic is not None:
        app.include_router(traffic_router(runtime.traffic))
    app.add_middleware(
        Guard,
        keys=parse_api_keys(settings.api_keys.get_secret_value()),
        max_body_bytes=settings.max_body_bytes,
    )
    return app


def data_plane(runtime: ServingRuntime) -> DataPlane:
    """The one scoring path every route shares: traffic policy, batching and limits."""
    settings = runtime.settings
    return DataPlane(
        slots=runtime.slots,
        select=runtime.traffic.selector
        if runtime.traffic is not None
        else TrafficSelector(runtime.slots, parse_policies(settings.traffic)),
        run=Batcher(parse_batching(settings.batching)),
        sink=runtime.offer_prediction if settings.publish_predictions else None,
        max_rows=settings.max_batch,
        timeout=settings.request_timeout,
    )


def main() -> None:
    settings = Settings()
    configure_logging("serving", settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry poll
    uvicorn.run(
        create_app(bootstrap(settings)),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
    )
