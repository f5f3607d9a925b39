"""The factory simulator: machines whose hidden wear drives their sensors and failures.

Deterministic for a seed, so tests and demos see the same data. A machine's wear
random-walks upward and is reset by maintenance; readings follow wear with noise, and
the label says whether the machine fails within the next hour.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass
class Machine:
    entity_id: str
    wear: float


LabelRule = Callable[[float, random.Random], int]


def fails_soon(wear: float, rng: random.Random) -> int:
    """The factory's rule: a worn machine fails within the hour."""
    return int(wear + rng.gauss(0, 0.05) > 0.78)


def fails_young(wear: float, rng: random.Random) -> int:
    """A changed world (concept drift): the new parts fail, the run-in ones hold."""
    return int(wear + rng.gauss(0, 0.05) < 0.3)


def factory_records(
    *,
    machines: int = 20,
    seed: int = 7,
    start: datetime | None = None,
    step: timedelta = timedelta(seconds=30),
    label: Callable[[], LabelRule] = lambda: fails_soon,
    clock: Callable[[], datetime] | None = None,
) -> Iterator[dict[str, Any]]:
    """An endless, time-ordered stream of ``machines`` records, one per machine per step;
    ``label`` says which rule labels each reading (asked at every reading, so a caller can
    change the world mid-stream), ``clock`` stamps readings with its time instead."""
    rng = random.Random(seed)
    fleet = [Machine(f"m-{i:03d}", rng.random() * 0.5) for i in range(machines)]
    now = start or datetime(2026, 1, 1, tzinfo=UTC)
    while True:
        for machine in fleet:
            yield _reading(machine, clock() if clock else now, rng, label())
            machine.wear = _next_wear(machine.wear, rng)
        now += step


def _next_wear(wear: float, rng: random.Random) -> float:
    if wear > 0.95 or rng.random() < 0.002:
        return rng.random() * 0.2  # repaired
    return min(1.0, wear + rng.uniform(-0.004, 0.012))


def _reading(machine: Machine, ts: datetime, rng: random.Random, rule: LabelRule) -> dict[str, Any]:
    wear = machine.wear
    return {
        "entity_id": machine.entity_id,
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "temperature": round(62 + 25 * wear + rng.gauss(0, 1.5), 3),
        "vibration": round(0.15 + 0.9 * wear**2 + abs(rng.gauss(0, 0.05)), 4),
        "pressure": round(3.0 + rng.gauss(0, 0.15), 3),
        "speed": round(1500 - 250 * wear + rng.gauss(0, 20), 1),
        "failure_within_1h": rule(wear, rng),
    }


def take(stream: Iterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return [next(stream) for _ in range(count)]
