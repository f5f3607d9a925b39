"""A connected site follows ``model-published``: with the manifest poll an hour apart,
only the event can explain a swap within seconds. Events for models the site does not
run are ignored, and an unreachable broker holds up neither serving nor polling."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
from millrace_cli.processes import ProcessSpec, Supervisor, free_port, script, wait_until
from millrace_common.contracts import (
    MODEL_PUBLISHED,
    AliasTarget,
)
from millrace_common.messaging import ensure_topics
from millrace_common.objectstore import ObjectStore, open_store

from tests.support.edge import served_version
from tests.support.kafka import publish_model
from tests.support.models import deploy_to_site

pytestmark = pytest.mark.integration
MODEL = "machine-failure"


def deploy(store: ObjectStore, site: str, version: int) -> AliasTarget:
    return deploy_to_site(store, site=site, name=MODEL, version=version, seed=version)


def agent_spec(*, site: str, port: int, store_url: str, broker: str, cache: Path) -> ProcessSpec:
    return ProcessSpec(
        name=f"edge-{site}",
        argv=[script("millrace-edge-agent"), "run", "--site", site],
        env={
            "MILLRACE_OBJECT_STORE": store_url,
            "MILLRACE_BROKER": broker,
            "MILLRACE_EDGE_AGENT_PORT": str(port),
            "MILLRACE_EDGE_AGENT_CACHE_DIR": str(cache),
            "MILLRACE_EDGE_AGENT_POLL_INTERVAL": "3600",
        },
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )


async def test_a_connected_site_swaps_within_seconds_of_the_event(
    tmp_path: Path, broker: str, object_store_url: str
) -> None:
    site = f"site-{uuid.uuid4().hex[:6]}"
    store = open_store(object_store_url)
    deploy(store, site, 1)
    await ensure_topics(broker, [MODEL_PUBLISHED])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    supervisor = Supervisor(tmp_path / "logs")
    try:
        await asyncio.to_thread(
            supervisor.start,
            agent_spec(
                site=site,
                port=port,
                store_url=object_store_url,
                broker=broker,
                cache=tmp_path / "cache",
            ),
            timeout=60,
        )
        await asyncio.to_thread(
            wait_until,
            lambda: httpx.get(f"{base}/v1/status").json()["model_events"] == "following",
            timeout=60,
            what="the agent to join its consumer group",
        )
        assert served_version(base, MODEL) == 1

        target = deploy(store, site, 2)
        await publish_model(broker, target, name="another-model")  # not this site's: ignored
        await asyncio.sleep(1.0)
        assert served_version(base, MODEL) == 1
        published = time.monotonic()
        await publish_model(broker, target)
        await asyncio.to_thread(
            wait_until,
            lambda: served_version(base, MODEL) == 2,
            timeout=15,
            what="version 2 after its event",
            interval=0.05,
        )
        swap_seconds = time.monotonic() - published
        metrics = httpx.get(f"{base}/metrics").text
    finally:
        supervisor.stop_all()
    print(f"edge swap {swap_seconds:.2f}s after model-published")
    assert swap_seconds < 10
    assert 'millrace_edge_model_events_total{outcome="ignored"} 1.0' in metrics
    assert 'millrace_edge_model_events_total{outcome="followed"} 1.0' in metrics


def test_an_unreachable_broker_holds_up_neither_serving_nor_polling(
    tmp_path: Path, object_store_url: str
) -> None:
    site = f"site-{uuid.uuid4().hex[:6]}"
    store = open_store(object_store_url)
    deploy(store, site, 1)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    spec = agent_spec(
        site=site,
        port=port,
        store_url=object_store_url,
        broker=f"127.0.0.1:{free_port()}",
        cache=tmp_path / "cache",
    )
    spec.env["MILLRACE_EDGE_AGENT_POLL_INTERVAL"] = "0.3"
    supervisor = Supervisor(tmp_path / "logs")
    try:
        supervisor.start(spec, timeout=60)
        assert served_version(base, MODEL) == 1
        deploy(store, site, 2)
        wait_until(
            lambda: served_version(base, MODEL) == 2, timeout=20, what="version 2 by polling"
        )
        assert httpx.get(f"{base}/v1/status").json()["model_events"] == "connecting"
    finally:
        supervisor.stop_all()


async def test_two_agents_of_one_site_both_swap_from_the_event(
    tmp_path: Path, broker: str, object_store_url: str
) -> None:
    """Each agent has its own consumer group (site + instance id), so one event reaches
    both; a shared group would hand it to one of them and leave the other to its poll."""
    site = f"site-{uuid.uuid4().hex[:6]}"
    store = open_store(object_store_url)
    deploy(store, site, 1)
    await ensure_topics(broker, [MODEL_PUBLISHED])
    supervisor = Supervisor(tmp_path / "logs")
    bases = []
    try:
        for n in (1, 2):
            port = free_port()
            spec = agent_spec(
                site=site,
                port=port,
                store_url=object_store_url,
                broker=broker,
                cache=tmp_path / f"cache-{n}",
            )
            spec.name = f"edge-{site}-{n}"
            await asyncio.to_thread(supervisor.start, spec, timeout=60)
            bases.append(f"http://127.0.0.1:{port}")
        for base in bases:
            await asyncio.to_thread(
                wait_until,
                lambda base=base: (
                    httpx.get(f"{base}/v1/status").json()["model_events"] == "following"
                ),
                timeout=60,
                what=f"{base} to join its consumer group",
            )
        ids = {httpx.get(f"{base}/v1/status").json()["instance_id"] for base in bases}
        assert len(ids) == 2
        assert [served_version(base, MODEL) for base in bases] == [1, 1]

        await publish_model(broker, deploy(store, site, 2))
        for base in bases:
            await asyncio.to_thread(
                wait_until,
                lambda base=base: served_version(base, MODEL) == 2,
                timeout=15,
                what=f"version 2 on {base} after its event (polls are an hour apart)",
                interval=0.05,
            )
    finally:
        supervisor.stop_all()
