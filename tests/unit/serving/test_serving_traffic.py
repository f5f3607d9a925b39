"""Done-when 3 and adaptive batching: canary and sticky splits measured over many requests
(within a stated tolerance), shadow mirrors every request and logs both answers, and
batched requests each get their own rows back from fewer onnxruntime calls."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from millrace_common.contracts import PredictionLogged
from millrace_common.dataplane import PendingLog
from millrace_serving.runtime import Runtime
from prometheus_client import REGISTRY

from tests.support.models import instance
from tests.support.serving import MODEL, app_of, promote, serving_runtime
from tests.support.waiting import until

PREDICT = f"/v1/models/{MODEL}/predict"
REQUESTS = 1000
# binomial sd of a 20% share over 1000 draws is 1.26 points: 5 points is ~4 sd
TOLERANCE = 0.05


async def post_all(
    runtime: Runtime, requests: list[tuple[dict[str, object], dict[str, str]]]
) -> list[dict[str, object]]:
    """Each (body, headers) posted in order; the JSON answers."""
    transport = httpx.ASGITransport(app=app_of(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
        return [
            (await client.post(PREDICT, json=body, headers=headers)).json()
            for body, headers in requests
        ]


class CollectedLogs:
    """Stands in for the Kafka prediction publisher: keeps what serving offers."""

    def __init__(self) -> None:
        self.events: list[PredictionLogged] = []

    def offer(self, pending: PendingLog) -> None:
        self.events.append(pending.event())


async def with_challenger(tmp_path: Path, **settings: object) -> Runtime:
    runtime = serving_runtime(tmp_path, aliases="production,challenger", **settings)
    await promote(runtime, 1)
    await promote(runtime, 2, alias="challenger")
    return runtime


async def test_canary_sends_its_percentage_to_the_challenger(tmp_path: Path) -> None:
    runtime = await with_challenger(tmp_path, traffic=f"{MODEL}:canary:20")
    answers = await post_all(runtime, [({"instances": [instance()]}, {})] * REQUESTS)
    by = Counter((a["version"], a["alias"]) for a in answers)
    assert set(by) == {(1, "production"), (2, "challenger")}
    share = by[(2, "challenger")] / REQUESTS
    assert abs(share - 0.20) <= TOLERANCE, f"challenger share {share:.3f}"


async def test_sticky_keys_always_land_on_the_same_version(tmp_path: Path) -> None:
    runtime = await with_challenger(tmp_path, traffic=f"{MODEL}:canary:20")
    keys = [f"machine-{i}" for i in range(REQUESTS // 2)]
    requests = [({"instances": [instance()]}, {"x-millrace-routing-key": key}) for key in keys]
    first = [a["version"] for a in await post_all(runtime, requests)]
    again = [a["version"] for a in await post_all(runtime, requests)]
    assert first == again  # every key got the same version both times
    share = sum(v == 2 for v in first) / len(keys)
    # 500 keys: sd 1.8 points, so 7 points is ~4 sd
    assert abs(share - 0.20) <= 0.07, f"challenger share of keys {share:.3f}"


async def test_a_request_naming_an_alias_or_version_bypasses_the_canary(tmp_path: Path) -> None:
    runtime = await with_challenger(tmp_path, traffic=f"{MODEL}:canary:100")
    client = TestClient(app_of(runtime))
    assert client.post(PREDICT, json={"instances": [instance()]}).json()["version"] == 2
    pinned = client.post(PREDICT, json={"instances": [instance()], "version": 1})
    assert pinned.json()["version"] == 1
    v2 = client.post(
        f"/v2/models/{MODEL}/infer",
        json={
            "inputs": [{"name": "input", "shape": [1, 7], "datatype": "FP32", "data": [0.5] * 7}]
        },
    )
    assert v2.json()["model_version"] == "2"
    assert v2.json()["parameters"] == {"alias": "challenger"}


async def test_shadow_answers_from_production_and_logs_both(tmp_path: Path) -> None:
    logs = CollectedLogs()
    runtime = await with_challenger(
        tmp_path, traffic=f"{MODEL}:shadow", publish_predictions=True, publisher=logs
    )
    transport = httpx.ASGITransport(app=app_of(runtime))
    count = 300
    async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
        answers = [
            (await client.post(PREDICT, json={"instances": [instance(i / count)]})).json()
            for i in range(count)
        ]
        await until(
            lambda: len(logs.events) >= 2 * count,
            timeout=30,
            what=f"{2 * count} prediction logs",
            interval=0.01,
        )
    assert {(a["version"], a["alias"]) for a in answers} == {(1, "production")}
    logged = Counter((e.version, e.alias) for e in logs.events)
    assert logged == {(1, "production"): count, (2, "challenger"): count}  # mirror: 100%
    by_input: dict[str, set[int]] = {}
    for event in logs.events:
        by_input.setdefault(event.inputs_sha256, set()).add(event.version)
    assert all(versions == {1, 2} for versions in by_input.values())


def batch_calls() -> tuple[float, float]:
    labels = {"model": MODEL}
    return (
        REGISTRY.get_sample_value("millrace_serving_batch_rows_count", labels) or 0.0,
        REGISTRY.get_sample_value("millrace_serving_batch_rows_sum", labels) or 0.0,
    )


SINGLES = [{"instances": [instance(i / 12)]} for i in range(12)]
MIXED = SINGLES[:9] + [{"instances": [instance(2.0), instance(-2.0), instance(0.1)]}]


@pytest.mark.parametrize(
    ("window", "max_rows", "bodies", "calls"),
    [("50ms", 64, MIXED, 1), ("2s", 4, SINGLES, 3)],
    ids=["window-closes-the-batch", "max-rows-close-the-batch"],
)
async def test_batched_callers_get_their_own_rows(
    tmp_path: Path, window: str, max_rows: int, bodies: list[dict[str, object]], calls: int
) -> None:
    """Twelve rows from concurrent callers: with room for all, one call when the window
    closes; with at most 4 rows, three full calls (none waits out the 2 s window)."""
    plain = serving_runtime(tmp_path / "plain")
    await promote(plain, 1)
    batched = serving_runtime(tmp_path, batching=f"{MODEL}:{window}:{max_rows}")
    await promote(batched, 1)
    max_rows_total = 12
    before = batch_calls()

    async def answers(runtime: Runtime) -> list[object]:
        transport = httpx.ASGITransport(app=app_of(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
            responses = await asyncio.gather(*(client.post(PREDICT, json=b) for b in bodies))
        return [r.json()["predictions"] for r in responses]

    async with asyncio.timeout(1.5):  # proves no batch waited out the 2 s window
        got = await answers(batched)
    assert got == await answers(plain)
    after = batch_calls()
    assert (after[0] - before[0], after[1] - before[1]) == (calls, max_rows_total)
