"""Data drift, computed without I/O: whether the retraining policy fires on the PSI of a
recent window against the latest snapshot (the distributions themselves are
``millrace_common.distribution``'s)."""

from __future__ import annotations

from collections.abc import Mapping

from millrace_common.project import DriftPolicy

DRIFT_PREFIX = "drift:"


def is_drift_reason(reason: str | None) -> bool:
    return reason is not None and reason.startswith(DRIFT_PREFIX)


def drift_reason(
    policy: DriftPolicy,
    *,
    psi_values: Mapping[str, float],
    rows: int,
    new_labelled: int,
    armed: bool,
) -> str | None:
    """Why the model should be retrained on drift now, or None.

    Nothing fires without labelled rows newer than the last snapshot, with fewer than
    ``min_rows`` rows in the window, or while disarmed: after a drift-triggered snapshot
    the same drift does not fire again until a measurement against the new reference
    has come back under the threshold (see ``rearms``).
    """
    if new_labelled <= 0 or rows < policy.min_rows or not armed or not psi_values:
        return None
    feature, value = max(psi_values.items(), key=lambda item: item[1])
    if value <= policy.psi:
        return None
    return (
        f"{DRIFT_PREFIX} {feature} PSI {value:.2f} > {policy.psi:g} ({policy.window}, {rows} rows)"
    )


def rearms(policy: DriftPolicy, *, psi_values: Mapping[str, float], rows: int) -> bool:
    """Whether a measurement ends a drift episode: enough rows, every feature under."""
    return rows >= policy.min_rows and all(v <= policy.psi for v in psi_values.values())
