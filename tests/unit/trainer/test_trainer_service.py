"""A train request end to end with fakes: in-memory store, in-memory registry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord
from millrace_common.contracts import AliasTarget, SnapshotRef, TrainRequest
from millrace_common.messaging import Poison
from millrace_common.objectstore import MemoryStore, sha256_hex
from millrace_trainer.consumer import handle_record
from millrace_trainer.handler import TrainService

MODEL = "machine-failure"


class FakeRegistry:
    """Records registrations; ``production`` is whatever the test says it is."""

    def __init__(self) -> None:
        self.registered: list[dict[str, Any]] = []
        self.production: AliasTarget | None = None
        self.runs: dict[str, list[dict[str, Any]]] = {}

    async def find_version(self, *, name: str, request_id: str) -> dict[str, Any] | None:
        return next((v for v in self.registered if v["request_id"] == request_id), None)

    async def alias(self, *, name: str, alias: str) -> AliasTarget | None:
        return self.production if alias == "production" else None

    async def register(self, *, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Like the registry: the version, and the end of the run it carries, at once."""
        run = body.pop("run")
        doc = body | {
            "name": name,
            "version": len(self.registered) + 1,
            "promoted": False,
            "reason": "recorded by the fake",
        }
        self.registered.append(doc)
        self.runs.setdefault(run["run_id"], []).append(
            run
            | {
                "status": "succeeded" if doc["status"] == "ready" else "rejected",
                "version": doc["version"],
                "metrics": doc["metrics"],
            }
        )
        return doc

    async def record_run(self, *, name: str, run_id: str, body: dict[str, Any]) -> None:
        self.runs.setdefault(run_id, []).append(body)

    async def running_runs(self, *, name: str) -> list[dict[str, Any]]:
        return []

    async def reachable(self) -> bool:
        return True


@pytest.fixture
def store(snapshot_bytes: bytes) -> MemoryStore:
    store = MemoryStore()
    store.put("datasets/machine_health/s1.parquet", snapshot_bytes)
    return store


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def service(project_dir: Path, store: MemoryStore, registry: FakeRegistry) -> TrainService:
    return TrainService(project_path=str(project_dir), store=store, registry=registry)


def request(
    store: MemoryStore,
    request_id: str = "req-1",
    *,
    sha256: str | None = None,
    model: str = MODEL,
    feature_set_version: int = 1,
) -> TrainRequest:
    data = store.get("datasets/machine_health/s1.parquet")
    return TrainRequest(
        request_id=request_id,
        model=model,
        reason="test",
        requested_by="pytest",
        requested_at=datetime.now(UTC),
        snapshot=SnapshotRef(
            uri=store.uri("datasets/machine_health/s1.parquet"),
            sha256=sha256 or sha256_hex(data),
            rows=600,
            cutoff=datetime(2026, 1, 2, tzinfo=UTC),
            feature_set="machine_health",
            feature_set_version=feature_set_version,
        ),
    )


def record(value: bytes) -> ConsumerRecord:
    return ConsumerRecord(
        topic="train-requests",
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=MODEL.encode(),
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(value),
        headers=(),
    )


async def test_request_is_trained_uploaded_and_registered_with_lineage(
    service: TrainService, store: MemoryStore, registry: FakeRegistry
) -> None:
    version = await service.handle(request(store))
    assert version["status"] == "ready" and version["rejection_reason"] is None
    assert version["metrics"]["f1"] > 0.5 and version["champion_metrics"] is None
    onnx = store.get(f"models/{MODEL}/req-1/model.onnx")
    assert (version["sha256"], version["size"]) == (sha256_hex(onnx), len(onnx))
    assert version["artifact_uri"] == store.uri(f"models/{MODEL}/req-1/model.onnx")
    assert version["schema"]["outputs"][1]["name"] == "probabilities"
    promotion = version["promotion"]
    assert {k: promotion[k] for k in ("metric", "direction", "margin")} == {
        "metric": "f1",
        "direction": "maximize",
        "margin": 0.0,
    }
    # the best trivial model on the same holdout, which the version beats
    assert promotion["baseline"] == version["lineage"]["baseline"]
    assert 0.5 <= promotion["baseline"]["roc_auc"] < 0.6
    assert version["metrics"]["f1"] > promotion["baseline"]["f1"]
    lineage = version["lineage"]
    assert lineage["snapshot"]["sha256"] == request(store).snapshot.sha256
    assert lineage["feature_set"]["name"] == "machine_health" and lineage["seed"] == 7
    assert lineage["train_request"]["request_id"] == "req-1"
    assert len(lineage["environment"]["lock_sha256"]) == 64
    assert lineage["environment"]["libraries"]["scikit-learn"] != "unknown"
    assert len(lineage["project"]["git_commit"]) == 40
    assert {"download", "load", "fit", "export", "checks", "upload"} <= set(lineage["timings"])
    assert lineage["checks"]["passed"] and lineage["params"]["n_estimators"] == 40
    card = orjson.loads(store.get(f"models/{MODEL}/req-1/model-card.json"))
    assert card["metrics"] == version["metrics"] and card["sha256"] == version["sha256"]


async def test_champion_is_evaluated_on_the_same_holdout(
    service: TrainService, store: MemoryStore, registry: FakeRegistry
) -> None:
    first = await service.handle(request(store, "req-1"))
    registry.production = AliasTarget.model_validate(first | {"alias": "production"})
    second = await service.handle(request(store, "req-2"))
    assert second["champion_version"] == 1
    # the same spec, seed and data give the same model: the champion scores identically
    assert second["champion_metrics"] == pytest.approx(second["metrics"])
    assert second["lineage"]["champion"]["note"] == "evaluated on the same holdout"


async def test_a_request_already_registered_is_not_trained_again(
    service: TrainService, store: MemoryStore, registry: FakeRegistry
) -> None:
    await service.handle(request(store))
    await service.handle(request(store))
    assert len(registry.registered) == 1


async def test_tampered_snapshot_goes_to_the_dlq(service: TrainService, store: MemoryStore) -> None:
    bad = request(store, sha256="0" * 64)
    with pytest.raises(Poison, match="sha256 mismatch"):
        await handle_record(service, record(bad.model_dump_json().encode()))


async def test_requests_that_can_never_succeed_are_poison(
    service: TrainService, store: MemoryStore
) -> None:
    with pytest.raises(Poison, match="not a TrainRequest"):
        await handle_record(service, record(b"{not json"))
    with pytest.raises(Poison, match="unknown model"):
        await handle_record(
            service, record(request(store, model="nope").model_dump_json().encode())
        )
    with pytest.raises(Poison, match="machine_health v2"):
        await handle_record(
            service, record(request(store, feature_set_version=2).model_dump_json().encode())
        )


async def test_every_attempt_is_a_run_with_timings_and_a_log(
    service: TrainService, store: MemoryStore, registry: FakeRegistry
) -> None:
    version = await service.handle(request(store))
    [(run_id, reports)] = registry.runs.items()
    assert [r["status"] for r in reports] == ["running", "succeeded"]
    done = reports[-1]
    assert done["version"] == version["version"] and done["metrics"] == version["metrics"]
    assert {"download", "load", "fit", "export", "checks", "upload"} <= set(done["timings"])
    # the log is in the store before the registration that names it
    run_log = orjson.loads(store.get(f"runs/{MODEL}/{run_id}/run-log.json"))
    assert run_log["status"] == "succeeded" and done["logs_uri"] == store.uri(
        f"runs/{MODEL}/{run_id}/run-log.json"
    )
    assert done["details"]["artifact_uri"] == version["artifact_uri"]
    assert version["lineage"]["feature_set"]["definition"]["dataset"] == "machines"


async def test_a_failed_attempt_is_a_failed_run_with_its_reason(
    service: TrainService, store: MemoryStore, registry: FakeRegistry
) -> None:
    with pytest.raises(Poison):
        await handle_record(
            service, record(request(store, "req-bad", sha256="0" * 64).model_dump_json().encode())
        )
    [reports] = registry.runs.values()
    assert reports[-1]["status"] == "failed" and reports[-1].get("version") is None
    assert "sha256 mismatch" in reports[-1]["failure_reason"]
    assert registry.registered == []
