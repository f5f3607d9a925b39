"""The retraining policy: by labelled-row count, by schedule, whichever comes first, and
never without labelled rows newer than the last snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from millrace_common.project import RetrainPolicy
from millrace_features.retrain_policy import LastSnapshot, retrain_reason
from pydantic import ValidationError

START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def reason(
    policy: RetrainPolicy, labelled: int, last: LastSnapshot | None, after: timedelta
) -> str | None:
    return retrain_reason(policy, labelled=labelled, last=last, now=START + after, started_at=START)


def test_by_count() -> None:
    policy = RetrainPolicy(every_n_labelled_rows=100)
    assert reason(policy, 99, None, timedelta(days=30)) is None
    assert reason(policy, 100, None, timedelta(0)) == "100 new labelled rows"
    last = LastSnapshot(labelled_rows=100, created_at=START)
    assert reason(policy, 199, last, timedelta(days=30)) is None
    assert reason(policy, 200, last, timedelta(0)) == "100 new labelled rows"


def test_by_schedule_counts_from_the_last_snapshot_or_the_start() -> None:
    policy = RetrainPolicy(every_n_labelled_rows=None, every="24h")
    assert reason(policy, 5, None, timedelta(hours=23)) is None
    assert (
        reason(policy, 5, None, timedelta(hours=24)) == "schedule: every 24h (5 new labelled rows)"
    )
    last = LastSnapshot(labelled_rows=5, created_at=START + timedelta(hours=24))
    assert reason(policy, 9, last, timedelta(hours=47)) is None
    assert (
        reason(policy, 9, last, timedelta(hours=48)) == "schedule: every 24h (4 new labelled rows)"
    )


def test_nothing_new_means_nothing_due() -> None:
    policy = RetrainPolicy(every_n_labelled_rows=1, every="1m")
    last = LastSnapshot(labelled_rows=50, created_at=START)
    assert reason(policy, 50, last, timedelta(days=365)) is None
    assert reason(policy, 0, None, timedelta(days=365)) is None


def test_whichever_comes_first() -> None:
    policy = RetrainPolicy(every_n_labelled_rows=1000, every="1h")
    last = LastSnapshot(labelled_rows=0, created_at=START)
    assert reason(policy, 1000, last, timedelta(minutes=1)) == "1000 new labelled rows"
    assert (
        reason(policy, 10, last, timedelta(hours=1)) == "schedule: every 1h (10 new labelled rows)"
    )


@pytest.mark.parametrize("every", ["daily", "24", "1w", "-1h", ""])
def test_a_malformed_schedule_names_the_field(every: str) -> None:
    with pytest.raises(ValidationError, match="every must look like"):
        RetrainPolicy(every=every)


def test_at_most_every_holds_back_count_and_schedule_after_a_snapshot() -> None:
    """Thousands of labelled rows a second would otherwise ask for a model each check."""
    policy = RetrainPolicy(every_n_labelled_rows=100, every="1m", at_most_every="10m")
    assert reason(policy, 100, None, timedelta(0)) == "100 new labelled rows"  # no snapshot yet
    last = LastSnapshot(labelled_rows=100, created_at=START)
    assert reason(policy, 5_000, last, timedelta(minutes=9, seconds=59)) is None
    assert reason(policy, 5_000, last, timedelta(minutes=10)) == "100 new labelled rows"
    due = reason(policy, 101, last, timedelta(minutes=10))
    assert due == "schedule: every 1m (1 new labelled rows)"


def test_a_malformed_at_most_every_names_the_field() -> None:
    with pytest.raises(ValidationError, match="at_most_every must look like"):
        RetrainPolicy(at_most_every="often")
