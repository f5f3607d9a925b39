"""The aggregations every window uses, and tumbling windows: pure logic, no I/O.

``reduce_values`` is the one implementation of every aggregation, shared by the
point-in-time sliding windows of the feature engine (``millrace_common.feature_engine``)
and the edge agent's pre-aggregation, whose fixed-width windows ``tumbling_start`` names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from millrace_common.project import Aggregation

Reducer = Callable[[Sequence[float]], float]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _std(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum([(v - mean) * (v - mean) for v in values]) / len(values))


REDUCERS: dict[Aggregation, Reducer] = {
    "count": lambda values: float(len(values)),
    "mean": _mean,
    "max": lambda values: float(max(values)) if values else 0.0,
    "min": lambda values: float(min(values)) if values else 0.0,
    "sum": lambda values: float(sum(values)),
    "last": lambda values: float(values[-1]) if values else 0.0,
    "std": _std,
}
"""Each aggregation of ``values`` in event-time order, a float (a bool field's last is 1.0
or 0.0); 0.0 for none (count: 0)."""


def reduce_values(agg: Aggregation, values: Sequence[float]) -> float:
    """``values`` (in event-time order) reduced by ``agg``; 0.0 for none (count: 0)."""
    return REDUCERS[agg](values)


def tumbling_start(epoch: float, *, width: int) -> int:
    """The start (epoch seconds) of the ``width``-second window holding ``epoch``;
    windows are aligned on the epoch, so every site cuts the same ones."""
    return math.floor(epoch / width) * width
