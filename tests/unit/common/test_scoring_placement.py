"""Where a request is scored: a cheap model on the event loop (a thread hop would cost
more than the model), a costly one on a thread, so the loop goes on reading requests
while onnxruntime, which releases the GIL, scores on the other core."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
from dataclasses import dataclass, field

import numpy as np
from millrace_common.dataplane import INLINE_ROW_SECONDS, INLINE_ROWS, run_now, scores_inline
from millrace_common.scoring import LoadedModel, load_model
from millrace_serving.batching import Batcher, parse_batching

from tests.support.models import build_model, instance

NAME = "machine-failure"


@dataclass(frozen=True)
class Traced(LoadedModel):
    """A loaded model that notes the thread of each run."""

    threads: list[int] = field(default_factory=list, repr=False)

    def run(self, matrix: np.ndarray) -> list[np.ndarray]:
        self.threads.append(threading.get_ident())
        return super().run(matrix)


def traced(row_seconds: float) -> Traced:
    model = loaded()
    kept = {f.name: getattr(model, f.name) for f in dataclasses.fields(model) if f.init}
    return Traced(**kept | {"row_seconds": row_seconds})


def loaded() -> LoadedModel:
    artifact = build_model(seed=1)
    return load_model(
        name=NAME, version=1, data=artifact.data, sha256=artifact.sha256, schema=artifact.schema
    )


def rows(n: int) -> np.ndarray:
    return np.asarray([list(instance(0.1 * i).values()) for i in range(n)], dtype=np.float32)


def test_loading_measures_what_a_row_costs() -> None:
    model = loaded()
    assert 0 < model.row_seconds < 1
    assert model.input_name == "input"  # replace() kept what the session told at load


def test_a_cheap_model_scores_inline_and_a_costly_one_on_a_thread() -> None:
    cheap = dataclasses.replace(loaded(), row_seconds=INLINE_ROW_SECONDS / 10)
    costly = dataclasses.replace(cheap, row_seconds=INLINE_ROW_SECONDS * 10)
    assert scores_inline(cheap, 1) and scores_inline(cheap, INLINE_ROWS)
    assert not scores_inline(cheap, INLINE_ROWS + 1)
    assert not scores_inline(costly, 1)

    matrix = rows(3)
    at_once = run_now(cheap, matrix)
    assert isinstance(at_once, list)
    on_thread = run_now(costly, matrix)
    assert inspect.isawaitable(on_thread)
    threaded = asyncio.run(_awaited(on_thread))
    for a, b in zip(at_once, threaded, strict=True):
        np.testing.assert_array_equal(a, b)


async def _awaited(result: object) -> list[np.ndarray]:
    return await result  # type: ignore[misc,no-any-return]


async def test_a_costly_models_batch_is_scored_on_a_thread() -> None:
    loop_thread = threading.get_ident()
    for row_seconds, off_the_loop in ((INLINE_ROW_SECONDS * 10, True), (0.0, False)):
        model = traced(row_seconds)
        batcher = Batcher(parse_batching(f"{NAME}:5ms:64"))
        matrices = [rows(n) for n in (1, 2, 3)]
        answers = await asyncio.gather(*[batcher(model, m) for m in matrices])  # type: ignore[arg-type]
        assert len(model.threads) == 1, "one onnxruntime call for the batch"
        assert (model.threads[0] != loop_thread) is off_the_loop
    costly = loaded()
    for matrix, outputs in zip(matrices, answers, strict=True):
        expected = costly.run(matrix)
        for got, want in zip(outputs, expected, strict=True):
            np.testing.assert_array_equal(got, want)
