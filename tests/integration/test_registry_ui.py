"""The registry's web UI on Postgres: the same pages over Postgres' JSON columns, aware
timestamps and the audit log's LIMIT/OFFSET paging."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from millrace_registry.app import create_app

from tests.support.registry import registry_runtime
from tests.support.registry_ui import page, populate, text

pytestmark = pytest.mark.integration


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    runtime = registry_runtime(database_url)
    yield TestClient(create_app(runtime))
    runtime.engine.dispose()


def test_every_page_renders_the_registrys_data_on_postgres(client: TestClient) -> None:
    populate(client)
    assert "f1=0.81 (v1)" in text(page(client, "/ui"))
    assert "promote v2 to production" in text(page(client, "/ui/models/machine-failure"))
    assert "s3://lake/datasets/machines/req-2.parquet" in text(
        page(client, "/ui/models/machine-failure/versions/2")
    )
    compared = page(client, "/ui/models/machine-failure/compare", run=["run-1", "run-3"])
    assert "snapshot lacks columns ['vibration']" in text(compared)
    newest = text(page(client, "/ui/models/machine-failure/audit", limit=2))
    older = text(page(client, "/ui/models/machine-failure/audit", limit=2, offset=2))
    assert "site assigned" in newest and "traffic canary" in newest
    assert "latency regression on v2" in older and "traffic canary" not in older
    assert "out of sync" in text(page(client, "/ui/sites/plant-1"))
    missing = client.get("/ui/models/machine-failure/versions/7")
    assert missing.status_code == 404 and "has no version 7" in text(missing.text)
