"""Live quality, no I/O: predictions as served joined to the labels that arrived later,
then the task's metrics per version, alias, site and window of prediction time.

A label finds its predictions two ways. One naming a ``request_id`` is the truth of that
request's row (``row``, or the row of its ``entity_id``, else its first). One naming an
entity and an event time ``ts`` is the truth of the entity's predictions made from ``ts``
until ``horizon`` later: the prediction saw the features of the records up to it, and
the newest label at or before it is the one of the record it was made from. A request
label wins over an entity label. A prediction keeps the first label it gets (by
observed time); a later one for the same row is a duplicate."""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from millrace_common.quality import Predictions, evaluate, log_loss


@dataclass(frozen=True, slots=True)
class Served:
    """One answered row as serving logged it."""

    version: int
    request_id: str
    row: int
    alias: str | None
    site: str | None
    entity_id: str | None
    at: datetime
    label: Any = None
    value: float | None = None
    probabilities: list[float] | None = None
    inputs: list[float | None] | None = None
    """The row's feature values, in the model's feature order."""


@dataclass(frozen=True, slots=True)
class Truth:
    """One observed label."""

    event_id: str
    value: Any
    at: datetime
    request_id: str | None = None
    row: int | None = None
    entity_id: str | None = None
    ts: datetime | None = None


@dataclass(frozen=True, slots=True)
class Labelled:
    served: Served
    truth: Truth


@dataclass
class LabelCounts:
    """What became of the labels: ``matched`` labelled at least one prediction,
    ``unmatched`` none, ``late`` arrived after the window of a prediction they labelled had
    ended, ``duplicate`` named a row another label had already labelled (or repeated an
    event id, counted when it arrived)."""

    received: int = 0
    matched: int = 0
    unmatched: int = 0
    late: int = 0
    duplicate: int = 0


@dataclass(frozen=True)
class Join:
    labelled: list[Labelled]
    unlabelled: list[Served]
    counts: LabelCounts


def join(served: Sequence[Served], truths: Iterable[Truth], *, horizon: float) -> Join:
    """Each prediction with its label, if one arrived (``horizon`` in seconds)."""
    by_request: dict[str, list[Served]] = defaultdict(list)
    for s in served:
        by_request[s.request_id].append(s)
    ordered = sorted(truths, key=lambda t: t.at)
    counts = LabelCounts(received=len(ordered))
    chosen: dict[tuple[int, str, int], Truth] = {}
    used: set[str] = set()

    for truth in ordered:
        if truth.request_id is None:
            continue
        rows = [s for s in by_request.get(truth.request_id, []) if _names_row(truth, s)]
        fresh = [s for s in rows if (s.version, s.request_id, s.row) not in chosen]
        if rows and not fresh:
            counts.duplicate += 1
        for s in fresh:
            chosen[(s.version, s.request_id, s.row)] = truth
            used.add(truth.event_id)

    # each entity's labels by event time (then observed time): (ts, observed, label)
    timeline: dict[str, list[tuple[float, datetime, Truth]]] = defaultdict(list)
    for truth in ordered:
        if truth.request_id is None and truth.entity_id is not None and truth.ts is not None:
            timeline[truth.entity_id].append((truth.ts.timestamp(), truth.at, truth))
    times: dict[str, list[float]] = {}
    for entity, labels in timeline.items():
        labels.sort(key=lambda item: (item[0], item[1]))
        times[entity] = [ts for ts, _at, _truth in labels]
    for s in served:
        key = (s.version, s.request_id, s.row)
        if key in chosen or s.entity_id is None or s.entity_id not in timeline:
            continue
        at = s.at.timestamp()
        i = bisect.bisect_right(times[s.entity_id], at) - 1
        if i >= 0 and at - times[s.entity_id][i] <= horizon:
            truth = timeline[s.entity_id][i][2]
            chosen[key] = truth
            used.add(truth.event_id)

    counts.matched = len(used)
    counts.unmatched = counts.received - counts.matched - counts.duplicate
    labelled = [
        Labelled(s, chosen[(s.version, s.request_id, s.row)])
        for s in served
        if (s.version, s.request_id, s.row) in chosen
    ]
    unlabelled = [s for s in served if (s.version, s.request_id, s.row) not in chosen]
    return Join(labelled, unlabelled, counts)


def _names_row(truth: Truth, served: Served) -> bool:
    if truth.row is not None:
        return served.row == truth.row
    if truth.entity_id is not None and served.entity_id is not None:
        return served.entity_id == truth.entity_id
    return served.row == 0


@dataclass
class WindowQuality:
    """One window of one (version, alias, site)'s predictions."""

    version: int
    alias: str | None
    site: str | None
    start: datetime
    end: datetime
    predictions: int
    labelled: int
    late_labels: int
    metrics: dict[str, float] = field(default_factory=dict)
    distribution: dict[str, float] = field(default_factory=dict)
    """classification: the share of each predicted label (``label=<l>``) and the mean
    probability of the last class; regression: the mean and spread of the values."""


def windows(
    joined: Join, *, task: str, window: float, origin: datetime | None = None
) -> list[WindowQuality]:
    """Metrics per (version, alias, site) and window of ``window`` seconds, the windows
    aligned on the epoch (``origin`` shifts them)."""
    start0 = origin.timestamp() if origin is not None else 0.0

    def bounds(s: Served) -> tuple[float, float]:
        start = start0 + math.floor((s.at.timestamp() - start0) / window) * window
        return start, start + window

    return _grouped(joined, task, bounds)


def totals(joined: Join, *, task: str, since: datetime, until: datetime) -> list[WindowQuality]:
    """Metrics per (version, alias, site) over all of [since, until)."""
    span = (since.timestamp(), until.timestamp())
    return _grouped(joined, task, lambda _s: span)


Group = tuple[int, str, str, float, float]


def _grouped(
    joined: Join, task: str, bounds: Callable[[Served], tuple[float, float]]
) -> list[WindowQuality]:
    groups: dict[Group, list[tuple[Served, Truth | None]]] = defaultdict(list)
    pairs = [(i.served, i.truth) for i in joined.labelled] + [(s, None) for s in joined.unlabelled]
    for s, t in pairs:
        groups[(s.version, s.alias or "", s.site or "", *bounds(s))].append((s, t))
    found = []
    for (version, alias, site, start, end), items in sorted(groups.items()):
        labelled = [(s, t) for s, t in items if t is not None]
        found.append(
            WindowQuality(
                version=version,
                alias=alias or None,
                site=site or None,
                start=datetime.fromtimestamp(start, UTC),
                end=datetime.fromtimestamp(end, UTC),
                predictions=len(items),
                labelled=len(labelled),
                late_labels=sum(1 for _s, t in labelled if t.at.timestamp() > end),
                metrics=metrics(task, labelled),
                distribution=distribution(task, [s for s, _t in items]),
            )
        )
    return found


def metrics(task: str, labelled: Sequence[tuple[Served, Truth]]) -> dict[str, float]:
    """The task's metrics on the labelled rows (the trainer's definitions), and
    ``log_loss`` when the model gave probabilities; empty without labels."""
    if not labelled:
        return {}
    if task == "regression":
        y_true = np.array([float(t.value) for _s, t in labelled])
        values = np.array([float(s.value or 0.0) for s, _t in labelled])
        return evaluate(task=task, y_true=y_true, predictions=Predictions(values))
    y_true = np.array([_class(t.value) for _s, t in labelled])
    y_pred = np.array([_class(s.label) for s, _t in labelled])
    with_proba = all(s.probabilities for s, _t in labelled)
    proba = np.array([s.probabilities for s, _t in labelled]) if with_proba else None
    classes = list(range(proba.shape[1])) if proba is not None else []
    found = evaluate(
        task=task, y_true=y_true, predictions=Predictions(y_pred, proba), classes=classes
    )
    if proba is not None:
        loss = log_loss(y_true, proba, classes)
        if math.isfinite(loss):
            found["log_loss"] = loss
    return found


def distribution(task: str, served: Sequence[Served]) -> dict[str, float]:
    if not served:
        return {}
    if task == "regression":
        values = np.array([s.value for s in served if s.value is not None], dtype=np.float64)
        if len(values) == 0:
            return {}
        return {"mean": float(values.mean()), "std": float(values.std())}
    shares: dict[str, float] = defaultdict(float)
    for s in served:
        shares[f"label={s.label}"] += 1 / len(served)
    probabilities = [s.probabilities[-1] for s in served if s.probabilities]
    if probabilities:
        shares["mean_probability_last_class"] = float(np.mean(probabilities))
    return dict(shares)


def _class(value: Any) -> int:
    """A label as the class number the trainer uses (booleans and integral floats too)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return int(value)


def overall(task: str, joined: Join) -> dict[str, float]:
    """The metrics over every labelled prediction of ``joined`` (what a decision compares)."""
    return metrics(task, [(item.served, item.truth) for item in joined.labelled])


Z_CAP = 40.0
"""A z beyond which nothing changes (the normal's tail is 0 in a double), kept finite for
JSON."""


@dataclass(frozen=True)
class Comparison:
    """A challenger's labelled predictions against production's over the same time: the
    mean loss of each (classification: the share wrong; regression: the mean absolute
    error), and how sure it is that the challenger is worse: ``z`` of the difference
    (positive: the challenger errs more) and ``p_worse``, the one-sided confidence."""

    challenger: int
    production: int
    challenger_loss: float
    production_loss: float
    z: float
    p_worse: float

    def as_dict(self) -> dict[str, float]:
        return {
            "challenger_labelled": self.challenger,
            "production_labelled": self.production,
            "challenger_loss": self.challenger_loss,
            "production_loss": self.production_loss,
            "z": self.z,
            "p_worse": self.p_worse,
        }


def compare(
    task: str, challenger: Sequence[Labelled], production: Sequence[Labelled]
) -> Comparison | None:
    """A two-sample z-test of the per-row losses (pooled for two proportions, unpooled for
    absolute errors); None when either side has no labelled prediction."""
    if not challenger or not production:
        return None
    a, b = _losses(task, challenger), _losses(task, production)
    mean_a, mean_b = float(a.mean()), float(b.mean())
    if task == "regression":
        spread = (
            math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
            if min(len(a), len(b)) > 1
            else 0.0
        )
    else:
        pooled = (a.sum() + b.sum()) / (len(a) + len(b))
        spread = math.sqrt(pooled * (1 - pooled) * (1 / len(a) + 1 / len(b)))
    diff = mean_a - mean_b
    # no spread (every row right, or every row wrong, on both sides): as sure as it gets
    z = diff / spread if spread > 0 else math.copysign(Z_CAP, diff) if diff else 0.0
    z = max(-Z_CAP, min(Z_CAP, z))
    return Comparison(len(a), len(b), mean_a, mean_b, z, _normal_cdf(z))


def _losses(task: str, labelled: Sequence[Labelled]) -> np.ndarray:
    if task == "regression":
        return np.array(
            [abs(float(i.served.value or 0.0) - float(i.truth.value)) for i in labelled]
        )
    return np.array([float(_class(i.served.label) != _class(i.truth.value)) for i in labelled])


def _normal_cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))
