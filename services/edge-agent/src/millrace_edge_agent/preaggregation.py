"""Local pre-aggregation: per entity, one record per closed tumbling window of event
time instead of every raw record. Pure logic, no I/O.

An aggregate is a record of the same dataset: each float field is the window's mean
(an int field its rounded mean, a bool field true if any reading was), a label is the
window's maximum (so a failure inside the window is kept), ``ts`` is the window's end
and the event id, ``agg:<site>:<entity>:<window start>``, is the same whenever it is
recomputed from the same rows, so a re-send after a crash is a duplicate the centre
drops.

A window is closed, and may be sent, when the entity already has a queued record in a
later window (the stream moved past it), or when the site's clock is ``grace`` seconds
past its end *and* no record for it arrived in the last ``grace`` seconds (a backfill
of old readings is not cut in the middle of a request series).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from millrace_common.project import Dataset, FieldType, parse_timestamp
from millrace_common.windows import reduce_values


@dataclass(frozen=True)
class WindowSummary:
    """What the queue holds for one window of one entity (not the rows themselves)."""

    dataset: str
    entity_id: str
    start: int
    first_seq: int
    last_arrival: float
    rows: int


def closed_windows(
    summaries: Sequence[WindowSummary], *, width: int, grace: float, now: float
) -> list[WindowSummary]:
    """The windows that may be sent, oldest window first (so per entity in order)."""
    latest: dict[tuple[str, str], int] = defaultdict(lambda: -(2**62))
    for w in summaries:
        key = (w.dataset, w.entity_id)
        latest[key] = max(latest[key], w.start)
    closed = [
        w
        for w in summaries
        if w.start < latest[(w.dataset, w.entity_id)]
        or (now >= w.start + width + grace and now >= w.last_arrival + grace)
    ]
    return sorted(closed, key=lambda w: (w.start, w.dataset, w.entity_id))


def aggregate_event_id(*, site: str, entity_id: str, start: int) -> str:
    return f"agg:{site}:{entity_id}:{start}"


def summarise(
    *,
    dataset: Dataset,
    site: str,
    entity_id: str,
    start: int,
    width: int,
    records: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """The one record that stands for ``records`` (one entity's window, any order)."""
    ordered = sorted(records, key=lambda r: parse_timestamp(r[dataset.time]))
    summary: dict[str, Any] = {
        dataset.entity: entity_id,
        dataset.time: datetime.fromtimestamp(start + width, tz=UTC)
        .isoformat()
        .replace("+00:00", "Z"),
        "event_id": aggregate_event_id(site=site, entity_id=entity_id, start=start),
    }
    for name, kind in dataset.fields.items():
        summary[name] = _reduce(
            kind, [r[name] for r in ordered if r.get(name) is not None], agg="mean"
        )
    for name, kind in dataset.labels.items():
        present = [r[name] for r in ordered if r.get(name) is not None]
        if present:
            summary[name] = _reduce(kind, present, agg="max")
    return {k: v for k, v in summary.items() if v is not None}


def _reduce(kind: FieldType, values: list[Any], *, agg: str) -> Any:
    if not values:
        return None
    if kind == "str":
        return values[-1]  # no mean of words: the window's latest
    if kind == "bool":
        return any(values)
    reduced = reduce_values("mean" if agg == "mean" else "max", [float(v) for v in values])
    return round(reduced) if kind == "int" and reduced is not None else reduced
