"""The retraining policy: whether a model is due for a new snapshot, and why (the
reason travels in the train request and the run)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from millrace_common.project import RetrainPolicy


@dataclass(frozen=True)
class LastSnapshot:
    labelled_rows: int
    created_at: datetime


def retrain_reason(
    policy: RetrainPolicy,
    *,
    labelled: int,
    last: LastSnapshot | None,
    now: datetime,
    started_at: datetime,
) -> str | None:
    """Why the model should be retrained now, or None. Nothing is due without labelled
    rows newer than the last snapshot; the schedule counts from the last snapshot, or
    from ``started_at`` (the service's start) before the first; neither fires sooner
    than the policy's ``at_most_every`` after the last snapshot."""
    new = labelled - (last.labelled_rows if last is not None else 0)
    if new <= 0:
        return None
    if last is not None and (now - last.created_at).total_seconds() < policy.at_most_every_seconds:
        return None
    if policy.every_n_labelled_rows and new >= policy.every_n_labelled_rows:
        return f"{policy.every_n_labelled_rows} new labelled rows"
    every = policy.every_seconds
    since = last.created_at if last is not None else started_at
    if every is not None and (now - since).total_seconds() >= every:
        return f"schedule: every {policy.every} ({new} new labelled rows)"
    return None
