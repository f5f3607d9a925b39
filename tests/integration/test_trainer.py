"""The trainer end to end: a snapshot in S3, a train request on the broker, a real registry
(in-process under uvicorn) on Postgres; versions come out registered with lineage."""

from __future__ import annotations

import base64

import httpx
import pytest
from millrace_common.contracts import DLQ, DeadLetter, SnapshotRef
from millrace_common.objectstore import ObjectStore, key_of, sha256_hex
from millrace_trainer.runtime import Runtime

from tests.support.kafka import Record, at_least, read_topic, send_train_request
from tests.support.training import MODEL, train_request, versions_when

pytestmark = pytest.mark.integration


async def dead_letter_for(broker: str, request_id: str) -> DeadLetter:
    """The trainer's dead letter for the train request ``request_id``."""

    def ours(record: Record) -> bool:
        letter = DeadLetter.model_validate_json(record.value)
        original = base64.b64decode(letter.original).decode(errors="replace")
        return letter.consumer == "trainer" and request_id in original

    found = await read_topic(
        broker, DLQ, keep=ours, until=at_least(1), what=f"the dead letter of {request_id}"
    )
    return DeadLetter.model_validate_json(found[0].value)


async def test_train_request_becomes_a_registered_production_model(
    trainer: Runtime, registry_url: str, broker: str, snapshot: tuple[ObjectStore, SnapshotRef]
) -> None:
    store, ref = snapshot
    await send_train_request(broker, train_request(ref, "req-1"))
    [first] = await versions_when(registry_url, 1)
    assert (first["version"], first["status"], first["promoted"]) == (1, "ready", True)
    assert first["aliases"] == ["champion", "production"]
    assert first["metrics"]["f1"] > 0.5 and first["champion_metrics"] is None
    assert first["lineage"]["snapshot"]["sha256"] == ref.sha256
    assert first["lineage"]["train_request"]["request_id"] == "req-1"
    assert sha256_hex(store.get(key_of(first["artifact_uri"]))) == first["sha256"]
    async with httpx.AsyncClient(base_url=registry_url) as client:
        production = (await client.get(f"/v1/models/{MODEL}/aliases/production")).json()
    assert production["version"] == 1 and production["schema"]["inputs"][0]["name"] == "input"

    # the same data again: the champion is scored on the same holdout and is not beaten
    await send_train_request(broker, train_request(ref, "req-2"))
    second = (await versions_when(registry_url, 2))[1]
    assert second["champion_version"] == 1
    assert second["champion_metrics"] == pytest.approx(second["metrics"])
    assert second["promoted"] is False and second["aliases"] == ["challenger"]
    assert second["reason"].startswith("not promoted: f1")


async def test_replays_are_no_ops_and_tampered_snapshots_are_dead_lettered(
    trainer: Runtime, registry_url: str, broker: str, snapshot: tuple[ObjectStore, SnapshotRef]
) -> None:
    _, ref = snapshot
    await send_train_request(broker, train_request(ref, "req-a"))
    await versions_when(registry_url, 1)
    tampered = train_request(ref.model_copy(update={"sha256": "0" * 64}), "req-bad")
    for request in (train_request(ref, "req-a"), tampered, train_request(ref, "req-b")):
        await send_train_request(broker, request)
    # one key, one partition: once req-b is registered the replay and the bad one were seen
    versions = await versions_when(registry_url, 2)
    assert [(v["version"], v["request_id"]) for v in versions] == [(1, "req-a"), (2, "req-b")]
    letter = await dead_letter_for(broker, "req-bad")
    assert "sha256 mismatch" in letter.error
