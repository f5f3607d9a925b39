"""serving: scores the models the registry names over REST (``/v1``) and the Open
Inference Protocol (``/v2``), hot-swapping versions as ``model-published`` says. The
composition root (``bootstrap``), the app and ``main``."""

from __future__ import annotations

from fastapi import FastAPI
from millrace_common.dataplane import DataPlane
from millrace_common.db import make_engine
from millrace_common.http import include_flat
from millrace_common.inference_protocol import v2_router
from millrace_common.messaging import Producer
from millrace_common.model_cache import ModelCache
from millrace_common.objectstore import ObjectStore, open_store
from millrace_common.predict_api import predict_router
from millrace_common.scoring import ModelSlots
from millrace_common.service import health_routes, run, secure, service_app
from sqlalchemy import Engine

from millrace_serving.access import ACCESS_ERRORS, RULES
from millrace_serving.adapters.online_store import OnlineFeatures
from millrace_serving.adapters.prediction_log import PredictionPublisher
from millrace_serving.adapters.registry import HttpRegistry, Registry
from millrace_serving.admin import ModelAdmin
from millrace_serving.alias_follower import AliasFollower
from millrace_serving.api import router
from millrace_serving.batching import Batcher, parse_batching
from millrace_serving.config import Settings
from millrace_serving.runtime import SOURCE, Runtime
from millrace_serving.swap import Served, Swapper
from millrace_serving.traffic import TrafficSelector, parse_policies
from millrace_serving.traffic_follower import TrafficFollower


def bootstrap(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    registry: Registry | None = None,
    engine: Engine | None = None,
    producer: Producer | None = None,
    publisher: PredictionPublisher | None = None,
    cache: ModelCache | None = None,
) -> Runtime:
    """Every port, follower and use case serving runs on; ``publisher`` stands in for
    the Kafka prediction log (used only when ``publish_predictions`` is on); ``cache``
    (the last-known-good models on disk) defaults to ``settings.cache_path``."""
    slots = ModelSlots()
    served = Served(models=settings.model_names, aliases=settings.alias_names)
    swapper = Swapper(
        slots=slots,
        store=store or open_store(settings.object_store, create_bucket=False),
        served=served,
        cache=cache or ModelCache(settings.cache_path),
    )
    registry = registry or HttpRegistry(settings.registry_url, headers=settings.bearer())
    engine = engine or make_engine(settings.database_url)
    producer = producer or Producer(settings.broker, source=SOURCE)
    if settings.publish_predictions:
        publisher = publisher or PredictionPublisher(producer)
    else:
        publisher = None
    aliases = AliasFollower(swapper=swapper, registry=registry, pins=settings.pinned_versions)
    traffic = traffic_follower(settings, swapper=swapper, registry=registry)
    return Runtime(
        settings=settings,
        slots=slots,
        plane=data_plane(settings, traffic=traffic, publisher=publisher),
        swapper=swapper,
        alias_follower=aliases,
        traffic_follower=traffic,
        admin=ModelAdmin(follower=aliases),
        registry=registry,
        online=OnlineFeatures(engine),
        engine=engine,
        producer=producer,
        publisher=publisher,
    )


def traffic_follower(
    settings: Settings, *, swapper: Swapper, registry: Registry
) -> TrafficFollower:
    overrides = parse_policies(settings.traffic)
    return TrafficFollower(
        selector=TrafficSelector(swapper.slots, overrides),
        registry=registry,
        swapper=swapper,
        overrides=overrides,
    )


def data_plane(
    settings: Settings, *, traffic: TrafficFollower, publisher: PredictionPublisher | None
) -> DataPlane:
    """The one scoring path every route shares: traffic policy, batching and limits."""
    return DataPlane(
        slots=traffic.swapper.slots,
        select=traffic.selector,
        run=Batcher(parse_batching(settings.batching)),
        sink=publisher.offer if publisher is not None else None,
        max_rows=settings.max_batch,
        timeout=settings.request_timeout,
        log_sample_rate=settings.prediction_sample_rate,
    )


def create_app(runtime: Runtime) -> FastAPI:
    app = service_app(runtime, title="Millrace serving", description=__doc__, health=False)
    # routes are matched in order, each a cost on every request: the scoring routes first
    include_flat(
        app,
        predict_router(
            runtime.slots,
            lookup=runtime.online.lookup,
            plane=runtime.plane,
            access_errors=ACCESS_ERRORS,
        ),
    )
    include_flat(
        app,
        v2_router(
            runtime.plane,
            ready=runtime.ready,
            server="millrace-serving",
            access_errors=ACCESS_ERRORS,
        ),
    )
    health_routes(app, runtime)
    app.include_router(router)
    secure(app, runtime.settings, RULES)
    return app


def main() -> None:
    settings = Settings()
    # quiet: httpx logs a line per registry poll
    run("serving", settings, lambda: create_app(bootstrap(settings)), quiet=("httpx",))


if __name__ == "__main__":
    main()
