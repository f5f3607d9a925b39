"""A run the trainer was killed in does not stay ``running``: when the trainer starts again
it fails the runs it had started and not finished, and only those."""

from __future__ import annotations

from typing import Any

from millrace_common.objectstore import MemoryStore
from millrace_trainer.runs import INTERRUPTED, Run, fail_interrupted


class RunsRegistry:
    """Runs as the registry keeps them: the last report of each wins."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}

    async def record_run(self, *, name: str, run_id: str, body: dict[str, Any]) -> None:
        self.runs[run_id] = {"run_id": run_id, "model": name, "details": {}, **body}

    async def running_runs(self, *, name: str) -> list[dict[str, Any]]:
        return [r for r in self.runs.values() if r["model"] == name and r["status"] == "running"]


async def started(registry: RunsRegistry, *, model: str, trainer: str) -> Run:
    run = Run(
        model=model,
        request_id=f"req-{len(registry.runs)}",
        store=MemoryStore(),
        registry=registry,  # type: ignore[arg-type]
        trainer=trainer,
    )
    await run.start(params={"n_estimators": 5})
    return run


async def test_only_the_runs_this_trainer_left_running_are_failed_as_interrupted() -> None:
    registry = RunsRegistry()
    mine = await started(registry, model="a", trainer="t-1")
    theirs = await started(registry, model="a", trainer="t-2")
    other_model = await started(registry, model="b", trainer="t-1")
    done = await started(registry, model="a", trainer="t-1")
    await done.fail(reason="bad snapshot", params={}, timings={})

    failed = await fail_interrupted(
        registry=registry,  # type: ignore[arg-type]
        models=["a", "b"],
        trainer="t-1",
    )

    assert failed == 2
    for run in (mine, other_model):
        report = registry.runs[run.run_id]
        assert report["status"] == "failed" and report["failure_reason"] == INTERRUPTED
        assert report["request_id"] == run.request_id and report["finished_at"]
    assert registry.runs[theirs.run_id]["status"] == "running"
    assert registry.runs[done.run_id]["failure_reason"] == "bad snapshot"
    assert await fail_interrupted(registry=registry, models=["a", "b"], trainer="t-1") == 0  # type: ignore[arg-type]
