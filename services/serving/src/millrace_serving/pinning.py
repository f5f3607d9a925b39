"""Pinned versions: the slot a pin is served from, and which registered versions serving
may pin (by config or the admin route).

A ``ready`` version passed its checks; an ``archived`` one did too and is a deliberate
rollback target. A ``rejected`` version failed its checks and a ``pending`` one has not
been checked yet: serving never loads either. Any other status is refused as well, so a
status serving does not know fails closed.
"""

from __future__ import annotations

from dataclasses import dataclass

from millrace_common.contracts import AliasTarget

PINNABLE = frozenset({"ready", "archived"})
_WHY = {"rejected": "it failed its checks", "pending": "its checks have not run yet"}


def pinned_alias(version: int) -> str:
    """The slot a version pinned by an operator (or the config) is served from."""
    return f"v{version}"


def is_pinned(alias: str) -> bool:
    return alias[:1] == "v" and alias[1:].isdigit()


@dataclass(frozen=True)
class RegisteredVersion:
    """A version as the registry describes it: where to load it from, and its status."""

    target: AliasTarget
    status: str
    rejection_reason: str | None = None


@dataclass(frozen=True)
class Refusal:
    reason: str
    """A short label for metrics: ``version_rejected``, ``version_pending`` or
    ``version_unservable`` (any other status)."""
    message: str
    """What an operator reads: the version, its status and why."""


def refusal(version: RegisteredVersion) -> Refusal | None:
    """Why serving must not load ``version``; None when it may."""
    status = version.status
    if status in PINNABLE:
        return None
    target = version.target
    why = _WHY.get(status, "serving loads only ready or archived versions")
    if status == "rejected" and version.rejection_reason:
        why = f"{why}: {version.rejection_reason}"
    return Refusal(
        reason=f"version_{status}" if status in _WHY else "version_unservable",
        message=f"version {target.version} of '{target.name}' is {status or 'unknown'} ({why})",
    )
