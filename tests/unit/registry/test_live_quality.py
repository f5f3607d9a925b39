"""The monitor's join of served predictions to later labels, and the live metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from millrace_registry.live_quality import Served, Truth, join, metrics, totals, windows
from sklearn.metrics import f1_score, log_loss, roc_auc_score

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = 3600.0


def served(
    request: str,
    *,
    at: float,
    entity: str | None = None,
    row: int = 0,
    label: int = 1,
    p1: float = 0.9,
    version: int = 1,
    alias: str | None = "production",
) -> Served:
    return Served(
        version=version,
        request_id=request,
        row=row,
        alias=alias,
        site=None,
        entity_id=entity,
        at=T0 + timedelta(seconds=at),
        label=label,
        probabilities=[1 - p1, p1],
    )


def truth(
    event: str,
    value: int,
    *,
    at: float,
    request: str | None = None,
    entity: str | None = None,
    ts: float | None = None,
    row: int | None = None,
) -> Truth:
    return Truth(
        event_id=event,
        value=value,
        at=T0 + timedelta(seconds=at),
        request_id=request,
        row=row,
        entity_id=entity,
        ts=None if ts is None else T0 + timedelta(seconds=ts),
    )


def test_a_label_naming_a_request_labels_its_row() -> None:
    rows = [served("r1", at=0, row=0), served("r1", at=0, row=1), served("r2", at=5)]
    found = join(rows, [truth("l1", 0, at=60, request="r1", row=1)], horizon=HOUR)
    assert [(i.served.request_id, i.served.row, i.truth.value) for i in found.labelled] == [
        ("r1", 1, 0)
    ]
    assert (found.counts.matched, found.counts.unmatched) == (1, 0)


def test_an_entity_label_labels_the_predictions_made_from_its_time_within_the_horizon() -> None:
    rows = [
        served("before", at=-10, entity="m1"),  # made before the labelled record
        served("after", at=30, entity="m1"),
        served("next", at=200, entity="m1"),  # after the entity's next label
        served("stale", at=2 * HOUR, entity="m1"),  # past the horizon of the newest label
        served("other", at=30, entity="m2"),
    ]
    labels = [truth("a", 1, at=500, entity="m1", ts=0), truth("b", 0, at=900, entity="m1", ts=100)]
    found = join(rows, labels, horizon=HOUR)
    assert {i.served.request_id: i.truth.event_id for i in found.labelled} == {
        "after": "a",
        "next": "b",
    }
    assert {s.request_id for s in found.unlabelled} == {"before", "stale", "other"}


def test_a_request_label_wins_and_a_second_one_for_the_same_row_is_a_duplicate() -> None:
    rows = [served("r1", at=10, entity="m1")]
    labels = [
        truth("by-entity", 0, at=20, entity="m1", ts=0),
        truth("first", 1, at=30, request="r1"),
        truth("again", 0, at=40, request="r1"),
        truth("nobody", 1, at=50, request="r-unknown"),
    ]
    found = join(rows, labels, horizon=HOUR)
    assert [i.truth.event_id for i in found.labelled] == ["first"]
    assert found.counts.duplicate == 1
    # the entity label found no prediction the request label had not taken, nor did r-unknown's
    assert (found.counts.received, found.counts.matched, found.counts.unmatched) == (4, 1, 2)


def test_live_metrics_are_the_trainers_definitions() -> None:
    rng = np.random.default_rng(3)
    p1 = rng.uniform(size=200)
    y = (rng.uniform(size=200) < p1).astype(int)
    rows = [served(f"r{i}", at=i, label=int(p > 0.5), p1=float(p)) for i, p in enumerate(p1)]
    labels = [truth(f"l{i}", int(v), at=1000 + i, request=f"r{i}") for i, v in enumerate(y)]
    found = metrics(
        "classification", [(i.served, i.truth) for i in join(rows, labels, horizon=HOUR).labelled]
    )
    assert found["f1"] == pytest.approx(f1_score(y, (p1 > 0.5).astype(int)))
    assert found["roc_auc"] == pytest.approx(roc_auc_score(y, p1))
    assert found["log_loss"] == pytest.approx(log_loss(y, np.c_[1 - p1, p1]), rel=1e-5)


def test_windows_split_by_version_and_time_and_count_late_labels() -> None:
    rows = [served("a", at=10), served("b", at=HOUR + 10), served("c", at=20, version=2)]
    labels = [
        truth("la", 1, at=30, request="a"),
        truth("lb", 1, at=3 * HOUR, request="b"),  # after its window ended
    ]
    found = join(rows, labels, horizon=HOUR)
    per_window = windows(found, task="classification", window=HOUR, origin=T0)
    assert [
        (w.version, w.start - T0, w.predictions, w.labelled, w.late_labels) for w in per_window
    ] == [
        (1, timedelta(0), 1, 1, 0),
        (1, timedelta(hours=1), 1, 1, 1),
        (2, timedelta(0), 1, 0, 0),
    ]
    overall = totals(found, task="classification", since=T0, until=T0 + timedelta(hours=4))
    assert [(w.version, w.predictions, w.labelled, w.metrics.get("accuracy")) for w in overall] == [
        (1, 2, 2, 1.0),
        (2, 1, 0, None),
    ]
