"""Adaptive batching (off unless configured, per model): requests that arrive within a
short window are stacked and scored in one onnxruntime call, up to a maximum number of
rows; each caller gets its own rows back. A batch is tied to the model object it was
opened on, so a hot swap never mixes versions in one call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field

import numpy as np
from millrace_common.dataplane import Outputs, run_now, scores_inline
from millrace_common.errors import InvalidInput
from millrace_common.scoring import LoadedModel

from millrace_serving.metrics import BATCH_ROWS


@dataclass(frozen=True)
class BatchPolicy:
    window: float
    """Seconds the first request of a batch waits for others."""
    max_rows: int


def parse_batching(spec: str) -> dict[str, BatchPolicy]:
    """``"machine-failure:8ms:64"`` → ``{"machine-failure": BatchPolicy(0.008, 64)}``."""
    policies: dict[str, BatchPolicy] = {}
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        name, window, rows = (item.rsplit(":", 2) + ["", ""])[:3]
        seconds = _seconds(window)
        if not name or seconds is None or not rows.isdigit() or int(rows) < 1:
            raise InvalidInput(
                f"MILLRACE_SERVING_BATCHING: {item!r} is not name:<window>ms:<max rows>",
                field="batching",
            )
        policies[name] = BatchPolicy(window=seconds, max_rows=int(rows))
    return policies


def _seconds(window: str) -> float | None:
    try:
        if window.endswith("ms"):
            return float(window[:-2]) / 1000
        return float(window.removesuffix("s"))
    except ValueError:
        return None


@dataclass
class _Batch:
    model: LoadedModel
    parts: list[tuple[np.ndarray, asyncio.Future[Outputs]]] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


class Batcher:
    """A data-plane ``Runner``: batches for configured models, at once for the rest.

    A caller waits on a plain future, resolved when its batch is scored; a batch cheap
    enough to score inline is scored in the timer's callback itself, without a task."""

    def __init__(self, policies: dict[str, BatchPolicy]) -> None:
        self.policies = policies
        self._open: dict[int, _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, model: LoadedModel, matrix: np.ndarray) -> Outputs | Awaitable[Outputs]:
        policy = self.policies.get(model.name)
        if policy is None or len(matrix) >= policy.max_rows:
            return run_now(model, matrix)
        loop = asyncio.get_running_loop()
        batch = self._open.get(id(model))
        if batch is None:
            batch = self._open[id(model)] = _Batch(model=model)
            batch.timer = loop.call_later(policy.window, self._flush, batch)
        future: asyncio.Future[Outputs] = loop.create_future()
        batch.parts.append((matrix, future))
        batch.rows += len(matrix)
        if batch.rows >= policy.max_rows:
            self._flush(batch)
        return future

    def _flush(self, batch: _Batch) -> None:
        if self._open.get(id(batch.model)) is batch:
            del self._open[id(batch.model)]
        if batch.timer is not None:
            batch.timer.cancel()
        matrix = (
            np.concatenate([m for m, _ in batch.parts])
            if len(batch.parts) > 1
            else batch.parts[0][0]
        )
        BATCH_ROWS.labels(batch.model.name).observe(len(matrix))
        if scores_inline(batch.model, len(matrix)):
            _score_inline(batch, matrix)
            return
        task = asyncio.get_running_loop().create_task(_score_on_thread(batch, matrix))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _score_inline(batch: _Batch, matrix: np.ndarray) -> None:
    try:
        outputs = batch.model.run(matrix)
    except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the error
        _fail(batch, exc)
        return
    _deliver(batch, outputs)


async def _score_on_thread(batch: _Batch, matrix: np.ndarray) -> None:
    try:
        outputs = await asyncio.to_thread(batch.model.run, matrix)
    except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the error
        _fail(batch, exc)
        return
    _deliver(batch, outputs)


def _fail(batch: _Batch, exc: Exception) -> None:
    for _, future in batch.parts:
        if not future.done():
            future.set_exception(exc)


def _deliver(batch: _Batch, outputs: Outputs) -> None:
    """Each caller's own rows; a caller that timed out has gone."""
    start = 0
    for part, future in batch.parts:
        end = start + len(part)
        if not future.done():
            future.set_result([o[start:end] for o in outputs])
        start = end
