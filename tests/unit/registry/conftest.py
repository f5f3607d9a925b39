"""The registry on SQLite with an in-memory store and a fake producer (no broker, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from millrace_common.objectstore import MemoryStore
from millrace_registry.app import Runtime, create_app

from tests.support.fakes import FakeProducer
from tests.support.registry import registry_runtime


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def runtime(tmp_path: Path, store: MemoryStore, producer: FakeProducer) -> Runtime:
    return registry_runtime(
        f"sqlite:///{tmp_path}/millrace.db", store=store, producer=producer, relay_interval=0.05
    )


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """The routes without the lifespan: nothing is relayed unless a test asks."""
    yield TestClient(create_app(runtime))
    runtime.engine.dispose()
