"""Done-when 2: the registry is killed (-9) after committing an alias move and before it
could publish it; after a restart ``model-published`` carries the move, never zero times,
and consumers can deduplicate the copies by event id."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from millrace_cli.processes import ProcessSpec, Supervisor, free_port, script
from millrace_common.db import make_engine
from millrace_common.objectstore import open_store

from tests.support.kafka import published_events
from tests.support.registry import registration

pytestmark = pytest.mark.integration


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Supervisor]:
    # built after the S3 fixture set the AWS variables the child needs
    sup = Supervisor(tmp_path / "logs")
    yield sup
    sup.stop_all()


def registry_spec(
    *, broker: str, database_url: str, object_store_url: str, port: int, ready: str
) -> ProcessSpec:
    return ProcessSpec(
        name="registry",
        argv=[script("millrace-registry")],
        env={
            "MILLRACE_BROKER": broker,
            "MILLRACE_DATABASE_URL": database_url,
            "MILLRACE_OBJECT_STORE": object_store_url,
            "MILLRACE_REGISTRY_PORT": str(port),
            "MILLRACE_REGISTRY_RELAY_INTERVAL": "0.1",
        },
        ready_url=f"http://127.0.0.1:{port}/{ready}",
    )


def unsent_events(database_url: str, *, model: str) -> list[str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.text(
                        "SELECT key FROM registry.outbox WHERE sent_at IS NULL AND key LIKE :m "
                        "ORDER BY id"
                    ),
                    {"m": f"{model}:%"},
                )
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    return list(rows)


async def test_a_move_committed_before_a_crash_is_published_after_restart(
    processes: Supervisor, broker: str, database_url: str, object_store_url: str
) -> None:
    model = f"crash-{secrets.token_hex(3)}"
    port = free_port()
    # first life: the broker is unreachable, so nothing committed can have been published
    dead_broker = f"127.0.0.1:{free_port()}"
    processes.start(
        registry_spec(
            broker=dead_broker,
            database_url=database_url,
            object_store_url=object_store_url,
            port=port,
            ready="healthz",
        )
    )
    url = f"http://127.0.0.1:{port}"
    created = httpx.post(
        f"{url}/v1/models/{model}/versions",
        json=registration("r1", 0.9, store=open_store(object_store_url)),
        timeout=30,
    )
    assert created.status_code == 201 and created.json()["promoted"] is True
    assert unsent_events(database_url, model=model) == [f"{model}:production", f"{model}:champion"]
    processes.kill("registry")

    processes.start(
        registry_spec(
            broker=broker,
            database_url=database_url,
            object_store_url=object_store_url,
            port=port,
            ready="readyz",
        )
    )
    events = await published_events(broker, model=model, count=2)
    distinct = {ce_id: (key, event.version) for key, event, ce_id in events}
    assert sorted(distinct.values()) == [(f"{model}:champion", 1), (f"{model}:production", 1)]
    assert unsent_events(database_url, model=model) == []
