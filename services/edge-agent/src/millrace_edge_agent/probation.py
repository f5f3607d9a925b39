"""Probation after a swap: a new model is watched over its first predictions; if too
many of them fail, it is rolled back to the last-known-good model.

Warm-up proves a model runs on one row of zeros, not that it runs on what the site
sends. So every prediction of a model on probation is counted, and a prediction that
fails is scored again, inside the same request, by the model it replaced: the caller
gets an answer either way. Once the failures exceed ``max_error_rate`` of the window
the verdict cannot change, so the rollback happens at once rather than at its end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import structlog
from millrace_common.contracts import AliasTarget
from millrace_common.dataplane import Choice, run_inline
from millrace_common.scoring import LoadedModel

from millrace_edge_agent.metrics import PROBATION_FAILURES, RETRIED_ON_FALLBACK

log = structlog.get_logger(__name__)


@dataclass
class Probation:
    alias: str
    target: AliasTarget
    model: LoadedModel
    fallback_target: AliasTarget
    fallback: LoadedModel
    started: float
    ok: int = 0
    failed: int = 0
    rolled_back: bool = False
    last_error: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return self.model.name, self.model.version


Rollback = Callable[[Probation, str], None]


@dataclass
class ProbationWatch:
    """The models on probation: counts their predictions, hands a failed one to the
    fallback, and calls ``on_rollback`` once a model's failures decide its verdict."""

    on_rollback: Rollback
    window: int = 200
    window_seconds: float = 300.0
    max_error_rate: float = 0.05
    clock: Callable[[], float] = time.monotonic
    _watching: dict[tuple[str, int], Probation] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(
        self,
        *,
        alias: str,
        target: AliasTarget,
        model: LoadedModel,
        previous_target: AliasTarget,
        previous: LoadedModel,
    ) -> None:
        """Put ``model`` on probation; the fallback is ``previous``, or, if that was still
        on probation itself, the model it would have fallen back to."""
        with self._lock:
            earlier = self._watching.pop((previous.name, previous.version), None)
            if earlier is not None and not earlier.rolled_back:
                previous_target, previous = earlier.fallback_target, earlier.fallback
            self._watching[(model.name, model.version)] = Probation(
                alias=alias,
                target=target,
                model=model,
                fallback_target=previous_target,
                fallback=previous,
                started=self.clock(),
            )

    def on_probation(self, name: str, version: int) -> bool:
        probation = self._watching.get((name, version))
        return probation is not None and not probation.rolled_back

    async def run(self, model: LoadedModel, matrix: np.ndarray) -> list[np.ndarray]:
        """The data plane's runner: scores, and counts what a model on probation does."""
        try:
            outputs = await run_inline(model, matrix)
        except Exception as exc:
            self._record(model, error=exc)
            raise
        self._record(model, error=None)
        return outputs

    def recover(self, choice: Choice, exc: Exception) -> Choice | None:
        """The data plane's retry: a model on probation (or just rolled back) that failed
        hands the request to its fallback."""
        probation = self._watching.get((choice.model.name, choice.model.version))
        if probation is None:
            return None
        RETRIED_ON_FALLBACK.labels(probation.model.name).inc()
        log.debug(
            "prediction_retried_on_fallback",
            model=probation.model.name,
            version=probation.model.version,
            fallback=probation.fallback.version,
            error=str(exc)[:200],
        )
        return Choice(model=probation.fallback, alias=choice.alias)

    def _record(self, model: LoadedModel, *, error: Exception | None) -> None:
        probation = self._watching.get((model.name, model.version))
        if probation is None or probation.rolled_back:
            return
        with self._lock:
            if error is None:
                probation.ok += 1
            else:
                probation.failed += 1
                probation.last_error = str(error)[:300]
                PROBATION_FAILURES.labels(model.name).inc()
            verdict = self._verdict(probation)
            if verdict == "failed":
                probation.rolled_back = True
            elif verdict == "passed":
                del self._watching[probation.key]
        if verdict == "failed":
            self.on_rollback(probation, self._reason(probation))
        elif verdict == "passed":
            log.info(
                "model_healthy",
                model=model.name,
                version=model.version,
                predictions=probation.ok + probation.failed,
                failed=probation.failed,
            )

    def _verdict(self, probation: Probation) -> str | None:
        seen = probation.ok + probation.failed
        if probation.failed > self.max_error_rate * self.window:
            return "failed"  # more than the window can absorb, whatever comes next
        over = seen >= self.window or self.clock() - probation.started >= self.window_seconds
        if not over:
            return None
        return "failed" if probation.failed > self.max_error_rate * seen else "passed"

    def _reason(self, probation: Probation) -> str:
        seen = probation.ok + probation.failed
        return (
            f"health check failed: {probation.failed} of {seen} predictions failed "
            f"(more than {self.max_error_rate:.0%}); last error: {probation.last_error}"
        )
