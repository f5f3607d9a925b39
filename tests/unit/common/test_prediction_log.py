"""A prediction's log leaves the request as references and is built later, off its path:
the contract it becomes carries the inputs' digest, the formatted outputs, the latency,
the site, and a request id unique across logs and processes."""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
from millrace_common.dataplane import next_request_id, prediction_log
from millrace_common.scoring import load_model

from tests.support.models import build_model


def test_the_log_is_built_from_what_the_request_left() -> None:
    artifact = build_model(seed=1)
    model = load_model(
        name="m", version=3, data=artifact.data, sha256=artifact.sha256, schema=artifact.schema
    )
    matrix = np.full((2, len(model.schema.features)), 0.5, dtype=np.float32)
    outputs = model.run(matrix)
    pending = prediction_log(model, "production", matrix, outputs, 0.0123456)

    event = pending.event(site="plant-7")
    assert (event.model, event.version, event.alias, event.site) == (
        "m",
        3,
        "production",
        "plant-7",
    )
    assert event.inputs_sha256 == hashlib.sha256(matrix.tobytes()).hexdigest()
    assert event.outputs == model.predict(matrix)
    assert event.latency_ms == 12.346
    assert pending.event().site is None


def test_request_ids_are_unique_uuids() -> None:
    ids = [next_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(str(uuid.UUID(i)) == i for i in ids[:100])
