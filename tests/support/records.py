"""A valid record of the factory's ``machines`` dataset, as a producer posts it."""

from __future__ import annotations

from typing import Any

RECORD: dict[str, Any] = {
    "entity_id": "m-1",
    "ts": "2026-01-01T00:00:00Z",
    "temperature": 70.5,
    "vibration": 0.2,
    "pressure": 3.1,
    "speed": 1500.0,
}
