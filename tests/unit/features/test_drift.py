"""Data drift without I/O: reference bins from quantiles, window shares, PSI, and when the
drift policy fires (and does not fire twice on one drift)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from millrace_common.distribution import (
    EPSILON,
    bin_edges,
    psi,
    psi_by_feature,
    reference_bins,
    reference_of,
    shares,
)
from millrace_common.errors import InvalidInput
from millrace_common.project import DriftPolicy, RetrainPolicy, load_project
from millrace_features.adapters.snapshots import Reference
from millrace_features.drift import drift_reason
from millrace_features.drift_check import DriftGate, DriftMeasurement, verdict
from pydantic import ValidationError


def normal(mean: float, n: int = 5000, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, 1.0) for _ in range(n)]


def psi_of(reference: list[float], current: list[float]) -> float:
    ref = reference_bins(reference)
    assert ref is not None
    return psi(ref.shares, shares(current, ref.edges))


def test_deciles_make_ten_bins_of_a_tenth() -> None:
    ref = reference_bins([float(i) for i in range(1, 101)])
    assert ref is not None
    assert len(ref.edges) == 9 and len(ref.shares) == 10
    assert ref.edges == pytest.approx([10.9, 20.8, 30.7, 40.6, 50.5, 60.4, 70.3, 80.2, 90.1])
    assert ref.shares == pytest.approx([0.1] * 10)


def test_identical_distributions_have_a_psi_of_about_zero() -> None:
    values = normal(0.0)
    assert psi_of(values, values) == pytest.approx(0.0, abs=1e-12)
    # another sample of the same distribution: only sampling noise
    assert psi_of(values, normal(0.0, seed=2)) < 0.02


def test_a_shifted_normal_drifts() -> None:
    reference = normal(0.0)
    assert 0.2 < psi_of(reference, normal(0.5, seed=2)) < 1.0
    assert psi_of(reference, normal(3.0, seed=2)) > 5.0


def test_outer_bins_are_open_ended() -> None:
    ref = reference_bins(normal(0.0))
    assert ref is not None
    assert shares([-1e9, 1e9], ref.edges) == [0.5] + [0.0] * 8 + [0.5]


def test_an_empty_bin_counts_as_epsilon() -> None:
    reference = [0.1] * 10
    current = [0.0] + [1 / 9] * 9  # the window has nothing in the first bin
    value = psi(reference, current)
    assert math.isfinite(value)
    expected = (EPSILON - 0.1) * math.log(EPSILON / 0.1) + 9 * (1 / 9 - 0.1) * math.log(
        (1 / 9) / 0.1
    )
    assert value == pytest.approx(expected)
    assert psi([0.0, 1.0], [0.0, 1.0]) == 0.0  # empty on both sides adds nothing


def test_tied_quantiles_merge_into_one_edge() -> None:
    # a count feature: mostly 5, some 1..4 (deciles 1, 3, 5, 5, 5, …)
    values = [1.0, 2.0, 3.0, 4.0] * 5 + [5.0] * 80
    edges = bin_edges(values)
    assert edges == sorted(set(edges)) and edges[-1] == 5.0
    assert len(edges) < 9
    ref = reference_bins(values)
    assert ref is not None and sum(ref.shares) == pytest.approx(1.0)
    # a constant feature: one edge, two bins, and the same constant does not drift
    constant = reference_bins([2.0] * 50)
    assert constant is not None and constant.edges == [2.0]
    assert psi(constant.shares, shares([2.0] * 7, constant.edges)) == 0.0


def test_missing_and_non_finite_values_are_left_out() -> None:
    assert bin_edges([]) == []
    assert reference_bins([math.nan, math.inf]) is None
    assert shares([math.nan, 1.0], [0.0]) == [0.0, 1.0]
    assert shares([], [0.0]) == [0.0, 0.0]


def test_psi_by_feature_reads_the_reference_json_and_ranks() -> None:
    reference = reference_of({"a": normal(0.0), "b": normal(10.0), "empty": []})
    assert set(reference["features"]) == {"a", "b"}
    rng = random.Random(3)
    rows = [{"a": rng.gauss(0, 1), "b": rng.gauss(12, 1)} for _ in range(1000)]
    found = psi_by_feature(reference, rows)
    assert list(found) == ["b", "a"]
    assert found["b"] > 1.0 > 0.05 > found["a"]


POLICY = DriftPolicy(psi=0.2, window="1h", min_rows=200)


def test_drift_fires_naming_the_feature_the_window_and_the_rows() -> None:
    psi_values = {"temperature_mean_10m": 0.314, "pressure_mean_10m": 0.05}
    reason = drift_reason(POLICY, psi_values=psi_values, rows=812, new_labelled=5, armed=True)
    assert reason == "drift: temperature_mean_10m PSI 0.31 > 0.2 (1h, 812 rows)"


@pytest.mark.parametrize(
    ("psi_values", "rows", "new_labelled", "armed"),
    [
        ({"t": 0.19}, 812, 5, True),  # under the threshold
        ({"t": 0.9}, 199, 5, True),  # too few rows in the window
        ({"t": 0.9}, 812, 0, True),  # no labelled rows since the last snapshot
        ({"t": 0.9}, 812, 5, False),  # the same drift already cut a snapshot
        ({}, 812, 5, True),  # nothing measured
    ],
)
def test_drift_does_not_fire(
    psi_values: dict[str, float], rows: int, new_labelled: int, armed: bool
) -> None:
    assert (
        drift_reason(
            POLICY, psi_values=psi_values, rows=rows, new_labelled=new_labelled, armed=armed
        )
        is None
    )


def measurement(
    psi_value: float, *, snapshot: str, reason: str, configured: bool = True
) -> DriftMeasurement:
    return DriftMeasurement(
        model="m",
        feature_set="fs",
        policy=POLICY,
        configured=configured,
        reference=Reference(
            snapshot_id=snapshot,
            rows=1000,
            labelled_rows=1000,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            reason=reason,
            distribution={},
        ),
        rows=500,
        window_start=None,
        window_end=None,
        psi={"t": psi_value},
        new_labelled=10,
    )


def test_a_drift_triggered_snapshot_quiets_drift_until_it_recovers() -> None:
    gate = DriftGate()
    first = measurement(0.5, snapshot="s1", reason="1000 new labelled rows")
    assert verdict(first, gate) is not None
    # the snapshot that drift cut is the new reference; the drift persists against it
    still = measurement(0.4, snapshot="s2", reason="drift: t PSI 0.50 > 0.2 (1h, 500 rows)")
    gate.observe(still)
    assert verdict(still, gate) is None
    calm = measurement(0.05, snapshot="s2", reason=still.reference.reason or "")
    gate.observe(calm)
    assert verdict(measurement(0.6, snapshot="s2", reason="drift: …"), gate) is not None
    # without a drift policy nothing fires, whatever the PSI
    assert verdict(measurement(9.0, snapshot="s1", reason="", configured=False), gate) is None


def test_the_policy_is_optional_and_validated() -> None:
    assert RetrainPolicy().drift is None
    policy = RetrainPolicy.model_validate({"drift": {"psi": 0.3, "window": "30m"}})
    assert policy.drift == DriftPolicy(psi=0.3, window="30m", min_rows=200)
    assert policy.drift.window_seconds == 1800
    for bad, message in [
        ({"psi": 0}, "greater than 0"),
        ({"window": "hourly"}, "window must look like"),
        ({"window": "0h"}, "window must look like"),
        ({"min_rows": 0}, "greater than or equal to 1"),
        ({"threshold": 0.2}, "Extra inputs"),
    ]:
        with pytest.raises(ValidationError, match=message):
            RetrainPolicy.model_validate({"drift": bad})


def test_a_bad_drift_policy_in_the_project_file_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "millrace.yaml").write_text(
        """
datasets:
  d: {fields: {x: float}, labels: {y: int}}
feature_sets:
  f: {dataset: d, label: y, features: [{name: x_last, field: x, agg: last}]}
models:
  m:
    feature_set: f
    estimator: sklearn.linear_model.LogisticRegression
    retrain: {drift: {psi: -1}}
"""
    )
    with pytest.raises(InvalidInput) as caught:
        load_project(tmp_path)
    assert caught.value.field == "models.m.retrain.drift.psi"
