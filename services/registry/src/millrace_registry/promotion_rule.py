"""The promotion rule, no I/O: whether a ready candidate beats the baseline (the best
trivial model) and the champion on the same holdout by the model spec's margin, and the
reason given either way."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class PromotionRule:
    """A candidate must beat the baseline, when it is known, and the champion on
    ``metric`` by at least ``margin``."""

    metric: str
    direction: Direction = "maximize"
    margin: float = 0.0
    baseline: Mapping[str, float] | None = None


@dataclass(frozen=True)
class Champion:
    """The production version now, and its metrics on the candidate's holdout (if known)."""

    version: int
    metrics: dict[str, float] | None
    evaluated_version: int | None = None


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(
    *, rule: PromotionRule, candidate: dict[str, float], champion: Champion | None
) -> Decision:
    """Apply the promotion rule to a ready candidate."""
    value = candidate.get(rule.metric)
    if value is None or not math.isfinite(value):
        return Decision(False, f"not promoted: candidate has no finite {rule.metric}")
    floor = (rule.baseline or {}).get(rule.metric)
    if floor is not None and not beats(rule=rule, candidate=value, champion=floor):
        return Decision(
            False,
            f"not promoted: {rule.metric} {_fmt(value)} does not beat the baseline "
            f"{_fmt(floor)} (the best trivial model on the same holdout) by margin "
            f"{_fmt(rule.margin)}",
        )
    if champion is None:
        return Decision(True, f"{rule.metric} {_fmt(value)}: no production version yet")
    stale = _stale_reason(champion, rule.metric)
    if stale:
        return Decision(False, f"not promoted: {stale}")
    assert champion.metrics is not None
    best = champion.metrics[rule.metric]
    if beats(rule=rule, candidate=value, champion=best):
        return Decision(
            True,
            f"{rule.metric} {_fmt(value)} beats champion v{champion.version} "
            f"{_fmt(best)} by margin {_fmt(rule.margin)}",
        )
    return Decision(
        False,
        f"not promoted: {rule.metric} {_fmt(value)} does not beat champion "
        f"v{champion.version} {_fmt(best)} by margin {_fmt(rule.margin)}",
    )


def _stale_reason(champion: Champion, metric: str) -> str | None:
    """Why the champion's metrics cannot be compared with the candidate's, if they cannot."""
    if champion.metrics is None or metric not in champion.metrics:
        return f"champion v{champion.version} has no {metric} on the candidate's holdout"
    if champion.evaluated_version is not None and champion.evaluated_version != champion.version:
        return (
            f"champion changed since evaluation (evaluated v{champion.evaluated_version}, "
            f"production is v{champion.version})"
        )
    return None


def beats(*, rule: PromotionRule, candidate: float, champion: float) -> bool:
    """Strictly better, and better by at least the margin."""
    if not math.isfinite(champion):
        return True
    gain = candidate - champion if rule.direction == "maximize" else champion - candidate
    return gain > 0 and gain >= rule.margin


def _fmt(value: float) -> str:
    return f"{value:.4f}"
