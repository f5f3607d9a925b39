"""The aggregations every window uses, and tumbling windows: pure logic, no I/O.

``reduce_values`` is the one implementation of every aggregation, shared by the
point-in-time sliding windows of the feature engine (``millrace_common.feature_engine``)
and the edge agent's pre-aggregation, whose fixed-width windows ``tumbling_start`` names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from millrace_common.project import Aggregation, Category

Reducer = Callable[[Sequence[Any]], float | None]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _std(values: Sequence[float]) -> float | None:
    if not values:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum([(v - mean) * (v - mean) for v in values]) / len(values))


REDUCERS: dict[Aggregation, Reducer] = {
    "count": lambda values: float(len(values)),
    "mean": _mean,
    "max": lambda values: float(max(values)) if values else None,
    "min": lambda values: float(min(values)) if values else None,
    "sum": lambda values: float(sum(values)),
    "last": lambda values: float(values[-1]) if values else None,
    "std": _std,
}
"""Each aggregation of ``values`` in event-time order, a float (a bool field's last is 1.0
or 0.0); of no values, 0.0 for count and sum and None (missing) for the others.
``since_last`` needs the readings' times: the feature engine computes it."""


def counting(value: Category) -> Reducer:
    """``count`` with ``equals``: how many of the values are ``value`` (a category)."""
    return lambda values: float(sum(1 for v in values if v == value))


def reduce_values(agg: Aggregation, values: Sequence[float]) -> float | None:
    """``values`` (in event-time order) reduced by ``agg`` (see ``REDUCERS``)."""
    return REDUCERS[agg](values)


def tumbling_start(epoch: float, *, width: int) -> int:
    """The start (epoch seconds) of the ``width``-second window holding ``epoch``;
    windows are aligned on the epoch, so every site cuts the same ones."""
    return math.floor(epoch / width) * width
