from __future__ import annotations

from millrace_common.errors import MillraceError


class TrainingError(MillraceError):
    """The request can never produce a model (bad snapshot, unusable spec …)."""

    code = "training_failed"
