"""The names the registry checks and the ones it gives a meaning to, no I/O: model, site
and alias names, the aliases the promotion rule moves, and the statuses of versions and
runs."""

from __future__ import annotations

import re
from typing import Literal

from millrace_common.errors import InvalidInput

ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")

PRODUCTION = "production"
CHAMPION = "champion"
CHALLENGER = "challenger"

VersionStatus = Literal["pending", "ready", "rejected", "archived"]
RunStatus = Literal["running", "succeeded", "rejected", "failed"]
READY = "ready"
REJECTED = "rejected"
PENDING = "pending"
ARCHIVED = "archived"
RUN_RUNNING = "running"


def run_outcome(version_status: str) -> RunStatus | None:
    """How a run that ended in a version of this status finished (None: not yet, the
    version's checks are still to be recorded)."""
    outcomes: dict[str, RunStatus] = {
        READY: "succeeded",
        ARCHIVED: "succeeded",
        REJECTED: "rejected",
    }
    return outcomes.get(version_status)


def check_alias(alias: str, *, field: str = "alias") -> str:
    if not ALIAS_PATTERN.fullmatch(alias):
        raise InvalidInput(f"{field} '{alias}' must match {ALIAS_PATTERN.pattern}", field=field)
    return alias


def check_name(value: str, *, field: str) -> str:
    if not NAME_PATTERN.fullmatch(value):
        raise InvalidInput(f"{field} '{value}' must match {NAME_PATTERN.pattern}", field=field)
    return value
