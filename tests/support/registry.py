"""The registry for tests: the one registration body a trainer would send, the registry app
under uvicorn in a thread for tests that need a real one, and two site manifest writers
racing, for the tests that they take turns."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import IO, Any

import uvicorn
from millrace_cli.processes import free_port, http_ok, wait_until
from millrace_common.contracts import AliasTarget, SiteManifest
from millrace_common.db import migrate, session_factory
from millrace_common.errors import NotFound
from millrace_common.objectstore import MemoryStore, ObjectInfo, ObjectStore, sha256_hex
from millrace_registry.adapters.manifests import ManifestWriter, manifest_key
from millrace_registry.adapters.tables import SCHEMA
from millrace_registry.app import MIGRATIONS, Runtime, bootstrap, create_app
from millrace_registry.artifacts import Artifacts
from millrace_registry.config import Settings
from millrace_registry.lifecycle import Lifecycle
from millrace_registry.schemas import Registration
from millrace_registry.sites import Sites
from sqlalchemy import Engine

SCHEMA_DOC = {
    "features": ["a", "b"],
    "task": "classification",
    "inputs": [{"name": "input", "dtype": "float32", "shape": [None, 2]}],
    "outputs": [
        {"name": "label", "dtype": "int64", "shape": [None]},
        {"name": "probabilities", "dtype": "float32", "shape": [None, 2]},
    ],
}


STAND_INS = MemoryStore()
"""The store of the registries these helpers build unless a test gives its own: the
stand-in artifacts of ``registration`` are in it, as the registry requires."""


def stand_in(request_id: str, store: ObjectStore = STAND_INS) -> ObjectInfo:
    """An artifact nothing reads (the registry checks only its size and digest), uploaded
    where the registry looks for it; its ``etag`` is its sha256."""
    key, data = f"models/m/{request_id}/model.onnx", f"stand-in {request_id}".encode()
    store.put(key, data)
    return ObjectInfo(key, len(data), sha256_hex(data))


class WithStandIns:
    """A test's store that also holds every stand-in artifact (reads fall back to
    ``STAND_INS``), so a test keeps its own store and still registers stand-ins."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self.url = store.url

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def get(self, key: str) -> bytes:
        try:
            return self._store.get(key)
        except NotFound:
            return STAND_INS.get(key)

    def stat(self, key: str) -> ObjectInfo:
        try:
            return self._store.stat(key)
        except NotFound:
            return STAND_INS.stat(key)

    def open(self, key: str) -> AbstractContextManager[IO[bytes]]:
        try:
            return self._store.open(key)
        except NotFound:
            return STAND_INS.open(key)


def registration(
    request_id: str,
    f1: float,
    *,
    champion: float | None = None,
    champion_version: int | None = None,
    target: AliasTarget | None = None,
    store: ObjectStore = STAND_INS,
    **extra: Any,
) -> dict[str, Any]:
    """A valid ``POST /v1/models/{name}/versions`` body (``extra`` replaces its fields):
    the candidate's f1 and, when given, the champion's on the same holdout. Without
    ``target`` the artifact is a stand-in uploaded to ``store`` (the registry's, when it
    is not ``STAND_INS``); with one, the body names that uploaded artifact and its
    schema."""
    artifact = stand_in(request_id, store)
    body = {
        "request_id": request_id,
        "artifact_uri": store.uri(artifact.key),
        "sha256": artifact.etag,
        "size": artifact.size,
        "schema": SCHEMA_DOC,
        "metrics": {"f1": f1, "accuracy": 0.9},
        "champion_metrics": None if champion is None else {"f1": champion},
        "champion_version": champion_version,
        "params": {"n_estimators": 10},
        "lineage": {"seed": 7},
        "promotion": {"metric": "f1", "direction": "maximize", "margin": 0.0},
    }
    if target is not None:
        body |= {
            "artifact_uri": target.artifact_uri,
            "sha256": target.sha256,
            "size": target.size,
            "schema": target.model_schema.model_dump(mode="json", by_alias=True),
        }
    return body | extra


def registry_runtime(
    database_url: str,
    *,
    store: ObjectStore | None = None,
    producer: Any = None,
    **settings: Any,
) -> Runtime:
    """A registry runtime on ``database_url``, migrated, on ``store`` (in memory by default);
    ``producer`` stands in for Kafka (without one, connecting to the broker fails: nothing
    can be relayed). Its lifespan does not run until a TestClient enters it."""

    async def connect() -> Any:
        if producer is None:
            raise OSError("no broker in this test: nothing is relayed")
        return producer

    settings.setdefault("monitor", False)  # its intake would need a broker
    runtime = bootstrap(
        Settings(database_url=database_url, **settings),
        store=WithStandIns(store or MemoryStore()),  # type: ignore[arg-type]
        connect_producer=connect,
    )
    migrate(runtime.engine, schema=SCHEMA, versions=MIGRATIONS)
    return runtime


@contextmanager
def running_registry(settings: Settings) -> Iterator[str]:
    """The registry app under uvicorn in a thread of its own; its URL once /readyz is 200."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(bootstrap(settings)),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not thread.is_alive():
            raise RuntimeError("the registry exited during start-up")
        return http_ok(f"{url}/readyz")

    try:
        wait_until(ready, timeout=60, what="the registry to be ready")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class ParkedPut:
    """An object store whose puts wait for ``release``: a manifest writer parked after it
    read the site's state and before its manifest lands."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.url = store.url
        self.parked = threading.Event()
        self.release = threading.Event()

    def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        self.parked.set()
        if not self.release.wait(timeout=120):
            raise TimeoutError("the parked put was never released")
        return self.store.put(key, data, content_type=content_type)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def race_manifest_writers(
    *,
    engines: tuple[Engine, Engine],
    store: ObjectStore,
    second_blocked: Callable[[], bool],
) -> tuple[SiteManifest, bool]:
    """Two manifest writers of one site, each on its own engine (as two registry processes
    would be): A reads the site (production on v1) and parks before its put; production
    moves to v2 and commits; B, the relay's rewrite after that move, starts. Once B has
    finished or ``second_blocked()`` says it waits for the site, A's put goes on.

    Returns the manifest left in ``store`` and whether B had finished while A was parked.
    The registry's tables must exist on the engines' database."""
    factory = session_factory(engines[0])
    lifecycle = Lifecycle(factory=factory, artifacts=Artifacts(STAND_INS))
    for request_id, f1 in (("r1", 0.9), ("r2", 0.8)):  # v1 production, v2 challenger
        lifecycle.register(
            name="m", registration=Registration.model_validate(registration(request_id, f1))
        )
    parked = ParkedPut(store)
    first = ManifestWriter(factory=factory, store=parked)
    second = ManifestWriter(factory=session_factory(engines[1]), store=store)
    Sites(factory=factory, manifests=second).assign_site(
        site_id="plant-1", model="m", alias="production", reason="pilot", actor="test"
    )
    before = SiteManifest.model_validate_json(store.get(manifest_key("plant-1")))
    assert [t.version for t in before.models] == [1]
    a = threading.Thread(target=first.write_site, kwargs={"site_id": "plant-1"})
    b = threading.Thread(
        target=second.write_following, kwargs={"model": "m", "alias": "production"}
    )
    a.start()
    try:
        assert parked.parked.wait(timeout=60), "writer A never reached its put"
        lifecycle.move_alias(name="m", alias="production", version=2, reason="v2", actor="test")
        b.start()
        wait_until(
            lambda: not b.is_alive() or second_blocked(),
            timeout=60,
            what="writer B to finish or wait for the site",
        )
        b_finished_first = not b.is_alive()
    finally:
        parked.release.set()
        a.join(timeout=60)
        if b.ident is not None:
            b.join(timeout=60)
    assert not a.is_alive() and not b.is_alive(), "a manifest writer is stuck"
    return SiteManifest.model_validate_json(store.get(manifest_key("plant-1"))), b_finished_first
