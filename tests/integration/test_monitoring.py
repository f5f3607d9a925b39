"""The registry's monitor on a broker of the test's own: predictions as served, labels over
REST (ingest), on the ``labels`` topic and on later records (labelled ``features`` rows),
joined into live quality; and production rolled back when a new version does worse live
than the one it replaced."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from millrace_cli.processes import ProcessSpec, Supervisor
from millrace_common.contracts import (
    FEATURES,
    LABELS,
    PREDICTIONS,
    TRAIN_REQUESTS,
    FeatureRowComputed,
    LabelObserved,
    PredictionLogged,
    TrainRequest,
)
from millrace_registry.config import Settings as RegistrySettings

from tests.support.features import load_factory
from tests.support.ingest import start_ingest
from tests.support.kafka import produce_events, read_topic
from tests.support.registry import registration, running_registry
from tests.support.waiting import until

pytestmark = pytest.mark.integration
MODEL = "machine-failure"


def monitored_project(source: Path, folder: Path, **monitoring: Any) -> Path:
    """The factory project whose model has ``monitoring``."""
    spec = yaml.safe_load((source / "millrace.yaml").read_text())
    spec["models"][MODEL]["monitoring"] = monitoring
    folder.mkdir()
    (folder / "millrace.yaml").write_text(yaml.safe_dump(spec))
    return folder


@pytest.fixture
def monitor(
    fresh_broker: str, database_url: str, object_store_url: str, project_dir: Path, tmp_path: Path
) -> Iterator[str]:
    project = monitored_project(
        project_dir,
        tmp_path / "project",
        label_horizon="10m",
        window="1h",
        rollback={"margin": 0.1, "min_labelled": 20},
    )
    with monitoring_registry(fresh_broker, database_url, object_store_url, project) as url:
        yield url


@pytest.fixture
def canary_monitor(
    fresh_broker: str, database_url: str, object_store_url: str, project_dir: Path, tmp_path: Path
) -> Iterator[str]:
    project = monitored_project(
        project_dir,
        tmp_path / "project",
        canary={"steps": [10, 50], "min_labelled": 20, "confidence": 0.95},
    )
    with monitoring_registry(fresh_broker, database_url, object_store_url, project) as url:
        yield url


@pytest.fixture
def labels_ingest(supervisor: Supervisor, fresh_broker: str, project_dir: Path) -> Iterator[str]:
    """Ingest on the test's broker, for labels over REST."""
    name = f"ingest-labels-{secrets.token_hex(3)}"
    port = start_ingest(supervisor, name=name, broker=fresh_broker, project_dir=project_dir)
    yield f"http://127.0.0.1:{port}"
    supervisor.stop(name)


@pytest.fixture
def broker(fresh_broker: str) -> str:
    """The features worker's broker (its fixture asks for ``broker``): the test's own."""
    return fresh_broker


@contextmanager
def monitoring_registry(
    broker: str, database_url: str, object_store_url: str, project: Path, **settings: Any
) -> Iterator[str]:
    options = RegistrySettings(
        broker=broker,
        database_url=database_url,
        object_store=object_store_url,
        relay_interval=0.1,
        project=str(project),
        monitor=True,
        monitor_interval=0.5,
        **settings,
    )
    with running_registry(options) as url:
        yield url


def logged(
    request_id: str,
    *,
    version: int,
    at: datetime,
    label: int,
    p1: float,
    entity: str | None = None,
    alias: str = "production",
) -> PredictionLogged:
    return PredictionLogged(
        request_id=request_id,
        model=MODEL,
        version=version,
        alias=alias,
        inputs_sha256="0" * 64,
        outputs=[{"label": label, "probabilities": [round(1 - p1, 6), p1]}],
        latency_ms=1.0,
        at=at,
        entity_ids=None if entity is None else [entity],
    )


def truth(request_id: str, value: int, *, at: datetime | None = None) -> LabelObserved:
    """The label of one request (its event id is the request's), observed ``at`` (now)."""
    return LabelObserved(
        event_id=request_id,
        dataset="machines",
        field="failure_within_1h",
        value=value,
        request_id=request_id,
        at=at or datetime.now(UTC),
    )


async def serve(broker: str, served: list[PredictionLogged], labels: list[LabelObserved]) -> None:
    """Prediction logs on ``predictions`` as serving sends them, then their labels."""
    await produce_events(broker, PREDICTIONS, [(p.model, p) for p in served])
    await produce_events(broker, LABELS, [(k.dataset, k) for k in labels])


def monitoring(url: str, **params: Any) -> dict[str, Any]:
    answer = httpx.get(f"{url}/v1/models/{MODEL}/monitoring", params=params, timeout=30)
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


async def test_labels_over_rest_kafka_and_later_records_make_live_quality(
    monitor: str, fresh_broker: str, labels_ingest: str, object_store_url: str
) -> None:
    from millrace_common.objectstore import open_store

    store = open_store(object_store_url)
    created = httpx.post(
        f"{monitor}/v1/models/{MODEL}/versions",
        json=registration("r1", 0.8, store=store),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    # the predictions' hour has ended: labels observed now are late, those on `labels`
    # (observed five minutes after the predictions) are not
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)

    # 10 answered by values, labelled by request id on `labels`; 10 by entity id, labelled
    # by entity and time: 5 over REST, 5 on later records. 15 of the 20 predictions are right.
    predictions = [
        logged(
            f"req-{i}",
            version=1,
            at=base + timedelta(seconds=i),
            label=i % 2,
            p1=0.8 if i % 2 else 0.2,
        )
        for i in range(10)
    ] + [
        logged(
            f"ent-{i}",
            version=1,
            at=base + timedelta(minutes=2, seconds=i),
            label=1,
            p1=0.7,
            entity=f"m-{i}",
        )
        for i in range(10)
    ]
    kafka_labels = [
        LabelObserved(
            event_id=f"k-{i}",
            dataset="machines",
            field="failure_within_1h",
            value=i % 2 if i < 5 else 1 - i % 2,
            request_id=f"req-{i}",
            at=base + timedelta(minutes=5),
        )
        for i in range(10)
    ]
    repeated = kafka_labels[0]
    rows = [
        FeatureRowComputed(
            event_id=f"row-{i}",
            feature_set="machine_health",
            feature_set_version=1,
            entity_id=f"m-{i}",
            event_time=base + timedelta(minutes=1),
            features={},
            label=1.0,
        )
        for i in range(5, 10)
    ]
    await produce_events(fresh_broker, PREDICTIONS, [(p.model, p) for p in predictions])
    await produce_events(fresh_broker, LABELS, [(k.dataset, k) for k in [*kafka_labels, repeated]])
    await produce_events(fresh_broker, FEATURES, [(r.entity_id, r) for r in rows])

    posted = httpx.post(
        f"{labels_ingest}/v1/datasets/machines/labels",
        json={
            "labels": [
                {
                    "entity_id": f"m-{i}",
                    "ts": (base + timedelta(minutes=1)).isoformat(),
                    "failure_within_1h": 1,
                }
                for i in range(5)
            ]
            + [{"request_id": "nobody-asked", "failure_within_1h": 0}]
        },
        timeout=30,
    )
    assert posted.status_code == 202, posted.text
    refused = httpx.post(
        f"{labels_ingest}/v1/datasets/machines/labels",
        json={"labels": [{"entity_id": "m-1", "failure_within_1h": "yes"}]},
        timeout=30,
    )
    assert refused.status_code == 422
    fields = {e["field"] for e in refused.json()["errors"]}
    assert {"labels[0].failure_within_1h", "labels[0]"} <= fields, refused.text

    since = (base - timedelta(hours=1)).isoformat()

    def joined() -> dict[str, Any] | None:
        report = monitoring(monitor, since=since)
        labels = report["labels"]
        return report if labels["matched"] >= 20 and labels["duplicate"] >= 1 else None

    report = await until(joined, timeout=120, what="20 labelled predictions and the duplicate")
    [entry] = report["versions"]
    assert (entry["version"], entry["alias"], entry["predictions"], entry["labelled"]) == (
        1,
        "production",
        20,
        20,
    )
    assert entry["metrics"]["accuracy"] == pytest.approx(15 / 20)
    assert report["labels"] == {
        "received": 21,
        "matched": 20,
        "unmatched": 1,
        "late": 10,
        "duplicate": 1,
    }
    assert [(w["labelled"], w["late_labels"]) for w in report["windows"]] == [(20, 10)]


async def test_production_worse_live_than_its_predecessor_is_rolled_back(
    monitor: str, fresh_broker: str, object_store_url: str
) -> None:
    from millrace_common.objectstore import open_store

    store = open_store(object_store_url)
    for body in (
        registration("r1", 0.7, store=store),
        registration("r2", 0.9, champion=0.7, champion_version=1, store=store),
    ):
        answer = httpx.post(f"{monitor}/v1/models/{MODEL}/versions", json=body, timeout=30)
        assert answer.status_code == 201, answer.text
    audit = httpx.get(f"{monitor}/v1/models/{MODEL}/audit", timeout=30).json()
    moves = sorted((e for e in audit if e["alias"] == "production"), key=lambda e: e["at"])
    assert [m["to_version"] for m in moves] == [1, 2]
    v1_since = datetime.fromisoformat(moves[0]["at"])
    v2_since = datetime.fromisoformat(moves[1]["at"])
    assert v2_since > v1_since

    # v1 was right on 30 of 30 while it served; v2 on 10 of 30 since it went to production
    step = (v2_since - v1_since) / 31
    served, labels = [], []
    for i in range(30):
        actual = i % 2
        served.append(
            logged(
                f"old-{i}",
                version=1,
                at=v1_since + step * (i + 1),
                label=actual,
                p1=0.9 if actual else 0.1,
            )
        )
        served.append(
            logged(
                f"new-{i}",
                version=2,
                at=v2_since + timedelta(milliseconds=10 * (i + 1)),
                label=actual if i < 10 else 1 - actual,
                p1=0.5,
            )
        )
        labels += [truth(f"{side}-{i}", actual) for side in ("old", "new")]
    await serve(fresh_broker, served, labels)

    def production() -> int:
        model = httpx.get(f"{monitor}/v1/models/{MODEL}", timeout=30).json()
        return int(model["aliases"]["production"])

    await until(lambda: production() == 1, timeout=120, what="the rollback to v1")
    [rollback] = [
        e
        for e in httpx.get(f"{monitor}/v1/models/{MODEL}/audit", timeout=30).json()
        if e["actor"] == "monitor" and e["alias"] == "production"
    ]
    assert (rollback["from_version"], rollback["to_version"]) == (2, 1)
    assert "live f1" in rollback["reason"] and "on 30 labelled predictions" in rollback["reason"]


async def register_canary(url: str, object_store_url: str) -> dict[str, Any]:
    """v1 in production, then v2 (better on its holdout) as the challenger at 10%."""
    from millrace_common.objectstore import open_store

    store = open_store(object_store_url)
    bodies = (
        registration("r1", 0.7, store=store),
        registration("r2", 0.9, champion=0.7, champion_version=1, store=store),
    )
    for body in bodies:
        answer = httpx.post(f"{url}/v1/models/{MODEL}/versions", json=body, timeout=30)
        assert answer.status_code == 201, answer.text
    model = httpx.get(f"{url}/v1/models/{MODEL}", timeout=30).json()
    assert (model["aliases"]["production"], model["aliases"]["challenger"]) == (1, 2)
    return traffic(url)


def traffic(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/v1/models/{MODEL}/traffic", timeout=30).json()  # type: ignore[no-any-return]


async def serve_labelled(
    broker: str, since: str, tag: str, *, canary_right: int, n: int = 30
) -> None:
    """``n`` labelled predictions of each side after ``since``: production right on all,
    the canary on ``canary_right``."""
    start = datetime.fromisoformat(since)
    served, labels = [], []
    for i in range(n):
        actual = i % 2
        at = start + timedelta(milliseconds=5 * (i + 1))
        served.append(
            logged(f"{tag}-p-{i}", version=1, at=at, label=actual, p1=0.8 if actual else 0.2)
        )
        guess = actual if i < canary_right else 1 - actual
        served.append(
            logged(f"{tag}-c-{i}", version=2, at=at, label=guess, p1=0.6, alias="challenger")
        )
        labels += [truth(f"{tag}-{side}-{i}", actual) for side in ("p", "c")]
    await serve(broker, served, labels)


async def test_a_canary_as_good_as_production_ramps_then_takes_production(
    canary_monitor: str, fresh_broker: str, object_store_url: str
) -> None:
    first = await register_canary(canary_monitor, object_store_url)
    assert (first["mode"], first["percent"], first["challenger_version"]) == ("canary", 10, 2)

    await serve_labelled(fresh_broker, first["updated_at"], "s1", canary_right=29)
    ramped = await until(
        lambda: (t := traffic(canary_monitor))["percent"] == 50 and t,
        timeout=120,
        what="the canary ramped to 50%",
    )
    await serve_labelled(fresh_broker, ramped["updated_at"], "s2", canary_right=30)

    def promoted() -> bool:
        model = httpx.get(f"{canary_monitor}/v1/models/{MODEL}", timeout=30).json()
        return bool(model["aliases"]["production"] == 2)

    await until(promoted, timeout=120, what="the canary in production")
    assert traffic(canary_monitor)["mode"] == "none"
    audit = httpx.get(f"{canary_monitor}/v1/models/{MODEL}/audit", timeout=30).json()
    by_monitor = [e["reason"] for e in audit if e["actor"] == "monitor"]
    assert any("ramped to 50%" in r and "on 30 labelled predictions" in r for r in by_monitor)
    assert any(r.startswith("monitor: canary passed every step") for r in by_monitor)
    report = monitoring(canary_monitor, since=first["updated_at"])
    assert report["comparisons"]["challenger"]["challenger_labelled"] == 60


async def test_a_canary_worse_than_production_is_stopped(
    canary_monitor: str, fresh_broker: str, object_store_url: str
) -> None:
    first = await register_canary(canary_monitor, object_store_url)
    await serve_labelled(fresh_broker, first["updated_at"], "bad", canary_right=10)
    await until(
        lambda: traffic(canary_monitor)["mode"] == "none", timeout=120, what="the canary stopped"
    )
    model = httpx.get(f"{canary_monitor}/v1/models/{MODEL}", timeout=30).json()
    assert model["aliases"]["production"] == 1
    [stopped] = [
        e
        for e in httpx.get(f"{canary_monitor}/v1/models/{MODEL}/audit", timeout=30).json()
        if e["action"] == "traffic_none"
    ]
    assert (
        stopped["actor"] == "monitor" and "monitor: stopped: canary v2 at 10%" in stopped["reason"]
    )


async def test_live_quality_under_the_threshold_asks_features_for_a_model_once(
    features: ProcessSpec,
    fresh_broker: str,
    database_url: str,
    object_store_url: str,
    project_dir: Path,
    tmp_path: Path,
) -> None:
    from millrace_common.objectstore import open_store

    project = monitored_project(project_dir, tmp_path / "project", window="1h")
    spec = yaml.safe_load((project / "millrace.yaml").read_text())
    spec["models"][MODEL]["retrain"]["on_quality"] = {"threshold": 0.8, "min_labelled": 20}
    (project / "millrace.yaml").write_text(yaml.safe_dump(spec))
    assert features.ready_url is not None
    features_url = features.ready_url.removesuffix("/readyz")
    load_factory(fresh_broker, database_url, count=400, total=400, seed=6)

    with monitoring_registry(
        fresh_broker, database_url, object_store_url, project, features_url=features_url
    ) as url:
        store = open_store(object_store_url)
        created = httpx.post(
            f"{url}/v1/models/{MODEL}/versions",
            json=registration("r1", 0.9, store=store),
            timeout=30,
        )
        assert created.status_code == 201, created.text
        # production actual on 10 of 30 in the last hour: f1 far under 0.8
        now = datetime.now(UTC)
        served = [
            logged(
                f"q-{i}",
                version=1,
                at=now - timedelta(minutes=5, seconds=i),
                label=i % 2 if i < 10 else 1 - i % 2,
                p1=0.5,
            )
            for i in range(30)
        ]
        labels = [truth(f"q-{i}", i % 2, at=now) for i in range(30)]
        await serve(fresh_broker, served, labels)

        def asked() -> list[dict[str, Any]]:
            audit = httpx.get(f"{url}/v1/models/{MODEL}/audit", timeout=30).json()
            return [e for e in audit if e["action"] == "retrain_requested"]

        [entry] = await until(asked, timeout=120, what="a retrain asked for on live quality")
        assert entry["actor"] == "monitor" and "is worse than the threshold 0.8" in entry["reason"]
        request_id = entry["reason"].rsplit("train request ", 1)[1]
        [record] = await read_topic(
            fresh_broker,
            TRAIN_REQUESTS,
            until=lambda found: any(request_id.encode() in (r.value or b"") for r in found),
            what=f"train request {request_id}",
        )
        request = TrainRequest.model_validate_json(record.value or b"")
        assert request.reason.startswith("quality: live f1") and request.requested_by == "monitor"
        await asyncio.sleep(3)  # six more checks: the cooldown (the window, an hour) holds
        assert len(asked()) == 1
