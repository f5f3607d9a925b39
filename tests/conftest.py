"""Shared fixtures: a real Kafka-protocol broker (Tansu), a fresh Postgres database,
and the S3 protocol through moto's server."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from millrace_cli.processes import Supervisor, free_port, tansu_spec

from tests.support.databases import create_database, drop_database
from tests.support.paths import FACTORY

# A service's behaviour is tested with authentication off (set before any app is built,
# and inherited by every process a test starts); the access tests (tests/*/test_access*,
# test_dev) turn it on and check who may call what.
os.environ.setdefault("MILLRACE_AUTH", "off")
# likewise edge agents take unsigned models, but in the signature tests and test_dev
os.environ.setdefault("MILLRACE_EDGE_AGENT_ALLOW_UNSIGNED", "true")


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return FACTORY


@pytest.fixture(autouse=True)
def serving_cache_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test's serving runtimes and processes keep their model cache apart (it would
    otherwise be ./.millrace/serving/<port>, shared by every test run)."""
    path = tmp_path_factory.mktemp("serving-cache")
    monkeypatch.setenv("MILLRACE_SERVING_CACHE_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def supervisor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    sup = Supervisor(tmp_path_factory.mktemp("procs"))
    yield sup
    sup.stop_all()


@pytest.fixture(scope="session")
def broker(supervisor: Supervisor) -> str:
    """Bootstrap address of a Tansu broker (in memory) for the whole session."""
    port = free_port()
    supervisor.start(tansu_spec(port))
    return f"127.0.0.1:{port}"


@pytest.fixture
def database_url() -> Iterator[str]:
    """A new, empty Postgres database per test."""
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server, so the ``minio`` client code path is the one tested."""
    from tests.support.s3 import start_s3  # moto is slow to import: only when asked

    server, endpoint = start_s3()
    yield endpoint
    server.stop()


@pytest.fixture
def object_store_url(s3_endpoint: str) -> str:
    """A fresh bucket per test on the S3 server."""
    return f"s3://mr-{secrets.token_hex(4)}?endpoint={s3_endpoint}&region=us-east-1"
