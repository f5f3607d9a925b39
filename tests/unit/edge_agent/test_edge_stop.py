"""A stop ends within its bound whatever the agent's dependencies do: a loop that does not
heed its cancel (aiokafka leaving a group on a dead broker) and a client that never
closes are left behind, and the queue file is closed with every row in it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from millrace_common.objectstore import MemoryStore
from millrace_edge_agent.adapters.queue import Queues
from millrace_edge_agent.adapters.queue.records import NewRecord
from millrace_edge_agent.app import bootstrap
from millrace_edge_agent.config import Settings
from millrace_edge_agent.shutdown import bounded

SITE = "plant-stop"


class Stubborn:
    """A loop whose cleanup waits on something that never answers."""

    def __init__(self) -> None:
        self.running = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def run(self) -> None:
        self.running.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            await asyncio.sleep(3600)  # a cleanup on a dead broker
            raise


class NeverCloses:
    async def close(self) -> None:
        await asyncio.Event().wait()


async def test_a_stop_ends_within_its_bound_and_closes_the_queue_file(tmp_path: Path) -> None:
    settings = Settings(site=SITE, cache_dir=str(tmp_path), broker="", stop_timeout=2.0)
    runtime = bootstrap(settings, store=MemoryStore())
    stubborn = Stubborn()
    runtime.heartbeats = stubborn  # type: ignore[assignment]
    runtime.closers.append(NeverCloses())
    runtime.queues.records.append(
        [
            NewRecord(event_id=f"e-{i}", dataset="machines", entity_id="m-1", record={"i": i})
            for i in range(3)
        ]
    )
    await runtime.start()
    await asyncio.wait_for(stubborn.running.wait(), timeout=30)

    started = time.monotonic()
    await runtime.stop()
    took = time.monotonic() - started

    assert stubborn.cancelled.is_set()
    assert took < settings.stop_timeout  # its half of the bound, and some room
    reopened = Queues.open(
        settings.queue_path, max_rows=10, max_age=3600.0, policy="reject-new"
    )  # the file was closed cleanly: it opens, every row in it
    assert reopened.records.depth() == 3
    reopened.close()


async def test_a_bounded_step_reports_whether_it_finished() -> None:
    async def quick() -> None:
        return None

    async def failing() -> None:
        raise RuntimeError("the broker is gone")

    assert await bounded(quick(), seconds=5.0, what="quick")
    assert await bounded(failing(), seconds=5.0, what="failing")  # finished, logged
    started = time.monotonic()
    assert not await bounded(asyncio.Event().wait(), seconds=0.2, what="forever")
    assert time.monotonic() - started < 5.0
