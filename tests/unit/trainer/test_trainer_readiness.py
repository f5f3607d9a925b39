"""The trainer's /readyz names the broker or the registry while it does not answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from millrace_common.messaging import Producer
from millrace_common.objectstore import MemoryStore
from millrace_trainer.app import bootstrap
from millrace_trainer.config import Settings

from tests.support.waiting import until


class Answering:
    def __init__(self) -> None:
        self.up = True


class FakeProducer(Producer):
    def __init__(self, state: Answering) -> None:
        super().__init__("127.0.0.1:1", source="trainer")
        self.state = state

    async def reachable(self, *, timeout: float = 2.0) -> bool:
        return self.state.up

    async def stop(self) -> None:
        return None


class FakeRegistry:
    def __init__(self, state: Answering) -> None:
        self.state = state

    async def running_runs(self, *, name: str) -> list[dict[str, Any]]:
        return []

    async def reachable(self) -> bool:
        return self.state.up


async def test_readiness_names_the_broker_and_the_registry_while_they_are_away(
    project_dir: Path,
) -> None:
    broker, registry = Answering(), Answering()
    producer = FakeProducer(broker)

    async def connect() -> Producer:
        return producer

    settings = Settings(project=str(project_dir), broker="127.0.0.1:1")
    runtime = bootstrap(
        settings,
        store=MemoryStore(),
        registry=FakeRegistry(registry),  # type: ignore[arg-type]
        connect_producer=connect,
    )
    await runtime.start()
    try:
        detail = await until(
            lambda: _detail(runtime, "partition"), timeout=10, what="the sweep to be done"
        )
        assert "partition assignment" in detail
        registry.up = False
        ok, detail = await runtime.ready()
        assert not ok and detail == f"registry {settings.registry_url} does not answer"
        broker.up = False
        ok, detail = await runtime.ready()
        assert not ok and detail == "broker 127.0.0.1:1 does not answer"
    finally:
        await runtime.stop()


async def _detail(runtime: Any, wanted: str) -> str | None:
    _, detail = await runtime.ready()
    return detail if wanted in detail else None
