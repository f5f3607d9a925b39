"""The whole platform as processes: Tansu, Postgres, S3 (moto's server), six services."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import pytest
from millrace_cli.platform import PlatformConfig, start_platform
from millrace_cli.processes import Supervisor, free_port

from tests.support.databases import create_database, drop_database
from tests.support.platform import Platform, factory_project
from tests.support.s3 import start_s3


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    workdir = tmp_path_factory.mktemp("platform")
    s3, s3_endpoint = start_s3()
    database = create_database()
    ports = {
        name: free_port()
        for name in ("broker", "ingest", "registry", "serving", "features", "trainer", "edge-agent")
    }
    config = PlatformConfig(
        database_url=database,
        object_store=f"s3://e2e-{secrets.token_hex(3)}?endpoint={s3_endpoint}&region=us-east-1",
        project=factory_project(tmp_path_factory.mktemp("project")),
        workdir=workdir,
        ports=ports,
    )
    supervisor = Supervisor(workdir / "logs")
    try:
        start_platform(supervisor, config)
        yield Platform(config, supervisor, s3)
    finally:
        supervisor.stop_all()
        with contextlib.suppress(Exception):  # a test may have stopped it already
            s3.stop()
        drop_database(database)
