"""A batch that fails is retried, nothing skipped, and readiness says why: the database
away, or a fault of the worker's own (which used to read as "database unreachable")."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from millrace_common.feature_engine import NoHistory
from millrace_common.project import load_project
from millrace_features.metrics import BATCH_FAILURES
from millrace_features.runtime import Runtime
from millrace_features.stream import RawConsumer

from tests.support.paths import FACTORY


def consumer() -> tuple[RawConsumer, Any]:
    runtime = SimpleNamespace(
        project=load_project(FACTORY),
        features=NoHistory(),
        settings=SimpleNamespace(max_windows=10),
        database_error=None,
        batch_error=None,
        on_project=[],
    )
    return RawConsumer(runtime), runtime  # type: ignore[arg-type]


def failing(times: int, error: Exception) -> Any:
    calls: list[int] = []

    def work(batch: int) -> str:
        calls.append(batch)
        if len(calls) <= times:
            raise error
        return f"batch {batch} done"

    return work


async def red_while(runtime: Any, attribute: str, task: asyncio.Task[str]) -> str:
    while getattr(runtime, attribute) is None:
        assert not task.done(), "recovered before readiness could say anything"
        await asyncio.sleep(0.01)
    return str(getattr(runtime, attribute))


async def test_a_fault_of_the_worker_is_retried_named_and_counted() -> None:
    stream, runtime = consumer()
    before = BATCH_FAILURES.labels("worker")._value.get()
    task = asyncio.create_task(stream._retrying(failing(2, TypeError("str + float")), 7))
    seen = await red_while(runtime, "batch_error", task)
    assert seen == "TypeError: str + float" and runtime.database_error is None
    ready, why = await Runtime.ready(_pinged(runtime))
    assert not ready and why == "a batch failed and is retried: TypeError: str + float"
    assert await asyncio.wait_for(task, timeout=60) == "batch 7 done"
    assert runtime.batch_error is None
    assert BATCH_FAILURES.labels("worker")._value.get() == before + 2


async def test_the_database_away_is_named_as_such() -> None:
    stream, runtime = consumer()
    down = sa.exc.OperationalError("INSERT", {}, ConnectionRefusedError("refused"))
    task = asyncio.create_task(stream._retrying(failing(1, down), 8))
    seen = await red_while(runtime, "database_error", task)
    assert seen.startswith("OperationalError") and runtime.batch_error is None
    assert await asyncio.wait_for(task, timeout=60) == "batch 8 done"
    assert runtime.database_error is None


def _pinged(runtime: Any) -> Any:
    """The runtime as readiness sees it, its database answering the ping."""
    runtime._ping_database = lambda: None
    runtime.assigned = True
    return runtime
