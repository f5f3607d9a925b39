"""The Open Inference Protocol's statistics say what serving did: with adaptive batching,
four requests that share one onnxruntime call are four successes, four rows and one
execution of batch size 4; a request refused for its tensors, on either route, is a
failure of the version that refused it; and the new routes are behind the same API keys
as the model routes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.support.identity import key_file
from tests.support.models import instance
from tests.support.serving import MODEL, app_of, promote, serving_runtime, v2_body

PREDICT = f"/v1/models/{MODEL}/predict"
STATS = f"/v2/models/{MODEL}/versions/1/stats"


def only(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    [stats] = answer.json()["model_stats"]
    return stats  # type: ignore[no-any-return]


async def test_batched_requests_are_one_execution(tmp_path: Path) -> None:
    # the batch closes when its 4th row arrives: the 5 s window is never waited out
    runtime = serving_runtime(tmp_path, batching=f"{MODEL}:5s:4")
    await promote(runtime, 1)
    transport = httpx.ASGITransport(app=app_of(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
        body = {"instances": [instance()]}
        answers = await asyncio.gather(*(client.post(PREDICT, json=body) for _ in range(4)))
        assert [a.status_code for a in answers] == [200] * 4
        stats = only(await client.get(STATS))
    assert (stats["inference_count"], stats["execution_count"]) == (4, 1)
    assert stats["inference_stats"]["success"]["count"] == 4
    assert [(b["batch_size"], b["compute_infer"]["count"]) for b in stats["batch_stats"]] == [
        (4, 1)
    ]


async def test_a_refused_request_is_a_failure_of_its_version(tmp_path: Path) -> None:
    runtime = serving_runtime(tmp_path)
    await promote(runtime, 1)
    client = TestClient(app_of(runtime))
    bad = v2_body()
    bad["inputs"][0]["data"][0][0] = None  # type: ignore[index]
    assert client.post(f"/v2/models/{MODEL}/infer", json=bad).status_code == 422
    assert client.post(PREDICT, json={"instances": [{"speed_last": 1.0}]}).status_code == 422
    assert client.post(PREDICT, json={"instances": [instance()]}).status_code == 200
    stats = only(client.get(STATS))
    assert stats["inference_stats"]["fail"]["count"] == 2
    assert stats["inference_stats"]["success"]["count"] == 1
    assert (stats["inference_count"], stats["execution_count"]) == (1, 1)


async def test_the_extension_routes_need_a_role_that_predicts(tmp_path: Path) -> None:
    keys = key_file(tmp_path)
    runtime = serving_runtime(tmp_path, **keys.settings())
    await promote(runtime, 1)
    client = TestClient(app_of(runtime))
    routes = [
        ("post", "/v2/repository/index"),
        ("get", "/v2/models/stats"),
        ("get", STATS),
        ("get", f"/v2/models/{MODEL}/config"),
    ]
    for method, path in routes:
        assert client.request(method, path).status_code == 401, path
        assert client.request(method, path, headers=keys.headers("site:s1")).status_code == 403
        assert client.request(method, path, headers=keys.headers("producer")).status_code == 200
    index = client.post(
        "/v2/repository/index", json={"ready": True}, headers=keys.headers("producer")
    )
    assert index.json() == [{"name": MODEL, "version": "1", "state": "READY", "reason": ""}]
    refused = client.post(
        "/v2/repository/index", json={"ready": "maybe"}, headers=keys.headers("producer")
    )
    assert refused.status_code == 422 and list(refused.json()) == ["error"]
