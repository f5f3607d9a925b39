"""Windowed aggregates per entity: pure logic, no I/O.

Sliding, point-in-time windows (the features service): a window holds an entity's
recent readings, sorted by event time. A feature row for an event aggregates only
readings with ``event time <= its own`` inside each feature's window, so it holds only
what was known when the event happened, whatever order the events arrive in.

Tumbling windows (the edge agent's pre-aggregation): ``tumbling_start`` names the
fixed-width window an event time falls in; ``reduce_values`` is the one implementation
of every aggregation, shared by both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from millrace_common.project import Aggregation, FeatureSet, FeatureSpec

# one reading: [epoch seconds, event id, {field: value}] — JSON-friendly for the changelog
Reading = list[Any]


def add_reading(
    window: Sequence[Reading], reading: Reading, *, keep_seconds: float
) -> list[Reading]:
    """A new window with ``reading`` in time order (once), and readings too old dropped."""
    if any(r[1] == reading[1] for r in window):
        updated = list(window)
    else:
        updated = sorted([*window, reading], key=lambda r: (r[0], r[1]))
    newest = updated[-1][0]
    return [r for r in updated if r[0] >= newest - keep_seconds]


def compute(
    feature_set: FeatureSet, window: Sequence[Reading], *, as_of: float
) -> dict[str, float]:
    """The feature vector as of ``as_of`` (inclusive)."""
    return {spec.name: _aggregate(spec, window, as_of) for spec in feature_set.features}


def _aggregate(spec: FeatureSpec, window: Sequence[Reading], as_of: float) -> float:
    start = as_of - spec.window_seconds
    values = [
        float(r[2][spec.field])
        for r in window
        if start < r[0] <= as_of and r[2].get(spec.field) is not None
    ]
    return reduce_values(spec.agg, values)


def reduce_values(agg: Aggregation, values: Sequence[float]) -> float:
    """``values`` (in event-time order) reduced by ``agg``; 0.0 for none (count: 0)."""
    if agg == "count":
        return float(len(values))
    if not values:
        return 0.0
    if agg == "mean":
        return sum(values) / len(values)
    if agg == "max":
        return max(values)
    if agg == "min":
        return min(values)
    if agg == "sum":
        return sum(values)
    if agg == "last":
        return values[-1]
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def tumbling_start(epoch: float, *, width: int) -> int:
    """The start (epoch seconds) of the ``width``-second window holding ``epoch``;
    windows are aligned on the epoch, so every site cuts the same ones."""
    return math.floor(epoch / width) * width
