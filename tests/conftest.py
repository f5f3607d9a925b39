"""Shared fixtures: a real Kafka-protocol broker (Tansu), a fresh Postgres database,
and the S3 protocol through moto's server."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from millrace_cli.processes import Supervisor, free_port, tansu_spec

ROOT = Path(__file__).resolve().parents[1]
FACTORY = ROOT / "examples" / "factory"
PG_ADMIN = os.environ.get("MILLRACE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return FACTORY


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


def create_database() -> str:
    name = f"millrace_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url() -> Iterator[str]:
    """A new, empty Postgres database per test."""
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server, so the ``minio`` client code path is the one tested."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "millrace-test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "millrace-test-secret")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def object_store_url(s3_endpoint: str) -> str:
    """A fresh bucket per test on the S3 server."""
    return f"s3://mr-{secrets.token_hex(4)}?endpoint={s3_endpoint}&region=us-east-1"
