"""Distributions without I/O: a feature's reference distribution (quantile bins of a
snapshot's rows), the shares of other rows in those bins, and the Population Stability
Index between the two. The features service measures drift on its offline rows with
them, the registry's monitor on the inputs serving answered.

PSI = Σ_i (c_i − r_i) · ln(c_i / r_i), over the reference's bins i, where r_i and c_i
are the shares of the reference's and the window's rows in bin i; a share of 0 counts
as ``EPSILON`` so an empty bin adds a large but finite term. 0 means the same
distribution; by the usual rule of thumb < 0.1 is stable, 0.1–0.2 a moderate shift and
> 0.2 a significant one.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BINS = 10
EPSILON = 1e-4


@dataclass(frozen=True)
class Bins:
    """Inner edges e_1 < … < e_k: bins (−∞, e_1], (e_1, e_2], …, (e_k, +∞), and the
    share of the reference's rows in each (k + 1 shares)."""

    edges: list[float]
    shares: list[float]


def _finite(values: Iterable[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, interpolated linearly (numpy's default)."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bin_edges(values: Iterable[float], bins: int = BINS) -> list[float]:
    """The inner edges of ``bins`` quantile bins (deciles for 10); tied quantiles merge
    into one edge, so a feature with few distinct values has fewer, wider bins."""
    ordered = sorted(_finite(values))
    if not ordered:
        return []
    edges = (quantile(ordered, i / bins) for i in range(1, bins))
    return sorted(set(edges))


def shares(values: Iterable[float], edges: Sequence[float]) -> list[float]:
    """The share of ``values`` in each bin of ``edges`` (all zeros without values)."""
    counts = [0] * (len(edges) + 1)
    finite = _finite(values)
    for value in finite:
        counts[bisect_left(edges, value)] += 1
    total = len(finite)
    return [c / total if total else 0.0 for c in counts]


def reference_bins(values: Iterable[float], bins: int = BINS) -> Bins | None:
    """A feature's reference distribution, or None when it has no finite value."""
    finite = _finite(values)
    if not finite:
        return None
    edges = bin_edges(finite, bins)
    return Bins(edges=edges, shares=shares(finite, edges))


def psi(reference: Sequence[float], current: Sequence[float], epsilon: float = EPSILON) -> float:
    """The Population Stability Index between two share vectors over the same bins."""
    if len(reference) != len(current):
        raise ValueError("reference and current shares must have the same bins")
    total = 0.0
    for r, c in zip(reference, current, strict=True):
        r, c = max(r, epsilon), max(c, epsilon)
        total += (c - r) * math.log(c / r)
    return total


def reference_of(columns: Mapping[str, Sequence[float]], bins: int = BINS) -> dict[str, Any]:
    """The JSON kept with a snapshot: each feature's bins, from the snapshot's rows."""
    features: dict[str, Any] = {}
    for name, values in columns.items():
        found = reference_bins(values, bins)
        if found is not None:
            features[name] = {"edges": found.edges, "shares": found.shares}
    return {"bins": bins, "epsilon": EPSILON, "features": features}


def psi_by_feature(
    reference: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """Each referenced feature's PSI for the window's feature rows, highest first."""
    found: dict[str, float] = {}
    for name, ref in reference.get("features", {}).items():
        values = [row[name] for row in rows if isinstance(row.get(name), int | float)]
        if values:
            found[name] = psi(ref["shares"], shares(values, ref["edges"]))
    return dict(sorted(found.items(), key=lambda item: item[1], reverse=True))
