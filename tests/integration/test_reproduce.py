"""Done-when 3 and the CLI: a version trained through the real trainer (broker, registry on
Postgres, S3) is reproduced by ``millrace models reproduce``; its runs, lineage and a
manual ``millrace train`` are driven from the CLI the way a user would."""

from __future__ import annotations

import asyncio

import pytest
from millrace_common.contracts import SnapshotRef
from millrace_common.objectstore import ObjectStore, key_of
from millrace_trainer.runtime import Runtime

from tests.support.cli import cli_json, run_cli
from tests.support.kafka import send_train_request
from tests.support.training import MODEL, train_request, versions_when

pytestmark = pytest.mark.integration


async def succeeded_runs(registry_url: str, *, count: int) -> list[dict[str, object]]:
    """The model's succeeded runs, read once: the registry finishes a run in the transaction
    that adds its version, so once ``count`` versions are visible their runs are too."""
    runs = await asyncio.to_thread(
        cli_json, "runs", "list", MODEL, "--status", "succeeded", "--registry", registry_url
    )
    assert isinstance(runs, list) and len(runs) >= count, runs
    return runs


async def test_a_trained_version_is_reproduced_exactly(
    trainer: Runtime,
    registry_url: str,
    broker: str,
    object_store_url: str,
    snapshot: tuple[ObjectStore, SnapshotRef],
) -> None:
    _, ref = snapshot
    await send_train_request(broker, train_request(ref, "req-repro"))
    [version] = await versions_when(registry_url, 1)

    report = cli_json(
        "models",
        "reproduce",
        MODEL,
        "1",
        "--registry",
        registry_url,
        "--object-store",
        object_store_url,
    )
    assert report["reproduced"] is True and report["snapshot"]["verified"] is True
    assert report["metrics"]["f1"]["original"] == report["metrics"]["f1"]["reproduced"]
    assert report["metrics"]["f1"]["original"] == version["metrics"]["f1"]
    assert report["onnx"]["label_mismatches"] == 0
    assert report["onnx"]["max_probability_diff"] <= report["onnx"]["tolerance"]
    assert report["onnx"]["holdout_rows"] == version["lineage"]["snapshot"]["holdout_rows"]
    assert report["environment"]["matches"] is True

    code, table = run_cli(
        "models",
        "reproduce",
        MODEL,
        "1",
        "--registry",
        registry_url,
        "--object-store",
        object_store_url,
    )
    assert code == 0 and "onnx outputs" in table and "f1" in table


async def test_a_tampered_snapshot_is_not_reproduced(
    trainer: Runtime,
    registry_url: str,
    broker: str,
    object_store_url: str,
    snapshot: tuple[ObjectStore, SnapshotRef],
) -> None:
    store, ref = snapshot
    await send_train_request(broker, train_request(ref, "req-t"))
    await versions_when(registry_url, 1)
    store.put(key_of(ref.uri), b"not the recorded data")
    code, output = run_cli(
        "models",
        "reproduce",
        MODEL,
        "1",
        "--registry",
        registry_url,
        "--object-store",
        object_store_url,
    )
    assert code == 1 and "sha256 mismatch" in output


async def test_runs_lineage_and_manual_training_from_the_cli(
    trainer: Runtime, registry_url: str, broker: str, snapshot: tuple[ObjectStore, SnapshotRef]
) -> None:
    _, ref = snapshot
    await send_train_request(broker, train_request(ref, "req-1"))
    await versions_when(registry_url, 1)
    # in a thread: the CLI runs its own event loop, and the trainer must keep running
    sent = await asyncio.to_thread(
        cli_json,
        "train",
        MODEL,
        "--registry",
        registry_url,
        "--broker",
        broker,
        "--from-version",
        "1",
    )
    assert sent["snapshot"]["sha256"] == ref.sha256  # production's snapshot, reused
    second = (await versions_when(registry_url, 2))[1]
    assert second["lineage"]["train_request"]["request_id"] == sent["request_id"]

    # (other tests' requests replayed from the shared topic show up as failed runs)
    runs = await succeeded_runs(registry_url, count=2)
    assert [r["version"] for r in runs] == [2, 1]
    assert all(r["logs_uri"] and {"fit", "export", "checks"} <= set(r["timings"]) for r in runs)
    compared = cli_json(
        "runs", "compare", MODEL, runs[0]["run_id"], runs[1]["run_id"], "--registry", registry_url
    )
    assert compared["metrics"]["f1"][0] == compared["metrics"]["f1"][1]

    lineage = cli_json("models", "lineage", MODEL, "2", "--registry", registry_url)
    assert lineage["train_request"]["requested_by"] and lineage["run"]["version"] == 2
    assert lineage["feature_set"]["definition"]["dataset"] == "machines"
    code, output = run_cli("models", "versions", MODEL, "--registry", registry_url)
    assert code == 0 and "challenger" in output
    code, output = run_cli("models", "show", "no-such-model", "--registry", registry_url)
    assert code == 1 and "no model 'no-such-model'" in output
    code, output = run_cli("models", "rollback", MODEL, "--reason", "x", "--registry", registry_url)
    assert code == 1 and "no earlier production version" in output
