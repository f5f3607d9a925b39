"""Fixtures the integration tests share: a registry under uvicorn, the trainer in-process
with a snapshot to train on, a features worker, the centre's ingest and a link to it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from millrace_cli.processes import ProcessSpec, Supervisor, free_port, tansu_spec
from millrace_common.contracts import SnapshotRef
from millrace_common.objectstore import ObjectStore, open_store, sha256_hex
from millrace_common.project import load_project
from millrace_registry.config import Settings as RegistrySettings
from millrace_trainer.app import bootstrap as trainer_bootstrap
from millrace_trainer.config import Settings as TrainerSettings
from millrace_trainer.runtime import Runtime as TrainerRuntime

from tests.support.edge import LinkProxy
from tests.support.features import features_process
from tests.support.ingest import start_ingest
from tests.support.registry import running_registry
from tests.support.snapshots import factory_snapshot


@pytest.fixture
def fresh_broker(supervisor: Supervisor) -> Iterator[str]:
    """A broker of the test's own, so counts of what is on a topic are the test's alone."""
    port = free_port()
    spec = tansu_spec(port)
    spec.name = f"tansu-{port}"
    supervisor.start(spec)
    yield f"127.0.0.1:{port}"
    supervisor.stop(spec.name)


@pytest.fixture
def registry_settings(broker: str, database_url: str, object_store_url: str) -> RegistrySettings:
    return RegistrySettings(
        broker=broker,
        database_url=database_url,
        object_store=object_store_url,
        relay_interval=0.1,
        monitor=False,  # tests/integration/test_monitoring.py turns it on
    )


@pytest.fixture
def registry_store(registry_settings: RegistrySettings) -> ObjectStore:
    """The registry's object store: a registration's artifact must be in it."""
    return open_store(registry_settings.object_store)


@pytest.fixture
def registry_url(registry_settings: RegistrySettings) -> Iterator[str]:
    with running_registry(registry_settings) as url:
        yield url


@pytest.fixture
async def trainer(
    broker: str, object_store_url: str, project_dir: Path, registry_url: str
) -> AsyncIterator[TrainerRuntime]:
    """The trainer in-process, in a consumer group of its own, registering at ``registry_url``."""
    settings = TrainerSettings(
        broker=broker,
        object_store=object_store_url,
        project=str(project_dir),
        registry_url=registry_url,
        group_id=f"trainer-{secrets.token_hex(3)}",
    )
    runtime = trainer_bootstrap(settings)
    await runtime.start()
    yield runtime
    await runtime.stop()


@pytest.fixture
def snapshot(object_store_url: str, project_dir: Path) -> tuple[ObjectStore, SnapshotRef]:
    """800 rows of the ``machine_health`` feature set in S3, and the reference naming them."""
    store = open_store(object_store_url)
    features = load_project(project_dir).feature_set("machine_health").feature_names
    data = factory_snapshot(800, seed=5, features=features)
    key = f"datasets/machine_health/{secrets.token_hex(4)}.parquet"
    store.put(key, data)
    return store, SnapshotRef(
        uri=store.uri(key),
        sha256=sha256_hex(data),
        rows=800,
        cutoff=datetime(2026, 1, 2, tzinfo=UTC),
        feature_set="machine_health",
        feature_set_version=1,
    )


@pytest.fixture
def features_env() -> dict[str, str]:
    """More settings for the features process (a test class overrides it)."""
    return {}


@pytest.fixture
def features(
    supervisor: Supervisor,
    broker: str,
    database_url: str,
    object_store_url: str,
    project_dir: Path,
    tmp_path: Path,
    features_env: dict[str, str],
) -> Iterator[ProcessSpec]:
    """A features worker on ``broker``, checking for retraining every half second."""
    spec = features_process(
        broker=broker,
        database_url=database_url,
        object_store_url=object_store_url,
        project_dir=project_dir,
        data_dir=tmp_path,
        env={"MILLRACE_FEATURES_RETRAIN_CHECK_SECONDS": "0.5", **features_env},
    )
    supervisor.start(spec, timeout=120)
    yield spec
    supervisor.stop(spec.name)


@pytest.fixture
def ingest_port(supervisor: Supervisor, broker: str, project_dir: Path) -> Iterator[int]:
    """The centre's ingest as a process on ``broker``."""
    name = f"ingest-{secrets.token_hex(3)}"
    yield start_ingest(supervisor, name=name, broker=broker, project_dir=project_dir)
    supervisor.stop(name)


@pytest.fixture
def ingest_url(ingest_port: int) -> str:
    return f"http://127.0.0.1:{ingest_port}"


@pytest.fixture
def link(ingest_port: int) -> Iterator[LinkProxy]:
    """A TCP link to the centre's ingest that the test can cut and restore."""
    proxy = LinkProxy(ingest_port)
    yield proxy
    proxy.close()
