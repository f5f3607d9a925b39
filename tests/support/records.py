"""A valid record of the factory's ``machines`` dataset, as a producer posts it, and a
valid prediction log, as an edge agent forwards it to ingest."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

RECORD: dict[str, Any] = {
    "entity_id": "m-1",
    "ts": "2026-01-01T00:00:00Z",
    "temperature": 70.5,
    "vibration": 0.2,
    "pressure": 3.1,
    "speed": 1500.0,
}


def prediction_log(request_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "model": "machine-failure",
        "version": 3,
        "alias": "production",
        "inputs_sha256": "0" * 64,
        "outputs": [{"label": 1, "probability": 0.8}],
        "latency_ms": 1.25,
        "at": datetime.now(UTC).isoformat(),
        **extra,
    }
