"""What this process serves against what the registry says it should serve, per
(model, alias) slot, and why they differ. No I/O: the swapper and the alias follower
report outcomes here, and readiness and the ``millrace_serving_target_mismatch`` gauge
read it.

A slot diverges when the registry's target could not be loaded (the old model, if any,
keeps answering): its artifact is missing (``missing_artifact``), the object store did
not answer (``store_unreachable``), its bytes are not the target's (``sha256_mismatch``,
``corrupt_download``), or it failed a check (``external_data``, ``schema_mismatch``,
``session_open``, ``warmup`` …). A slot served while the registry cannot be asked is
``registry_unreachable``: nobody can say it is in step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from millrace_serving.metrics import TARGET_MISMATCH

Slot = tuple[str, str]

REGISTRY_UNREACHABLE = "registry_unreachable"


@dataclass(frozen=True)
class Diverged:
    reason: str
    served: int | None
    """The version answering now (None: nothing loaded)."""
    target: int | None
    """The registry's version (None: the registry could not be asked)."""

    def describe(self, slot: Slot) -> str:
        served = f"serves v{self.served}" if self.served is not None else "serves nothing"
        if self.target is None:
            return f"{slot[0]}:{slot[1]} {served} ({self.reason})"
        return (
            f"{slot[0]}:{slot[1]} {served}, the registry's target is v{self.target} ({self.reason})"
        )


class Divergences:
    def __init__(self) -> None:
        self.slots: dict[Slot, Diverged] = {}

    def diverged(self, slot: Slot, *, reason: str, served: int | None, target: int | None) -> None:
        previous = self.slots.get(slot)
        if previous is not None and previous.reason != reason:
            _forget(slot, previous.reason)
        self.slots[slot] = Diverged(reason=reason, served=served, target=target)
        TARGET_MISMATCH.labels(slot[0], slot[1], reason).set(1)

    def unconfirmed(self, slot: Slot, *, served: int) -> None:
        """The registry could not be asked about ``slot``: a known divergence stays (it is
        still the last word), otherwise the slot is marked ``registry_unreachable``."""
        previous = self.slots.get(slot)
        if previous is None or previous.reason == REGISTRY_UNREACHABLE:
            self.diverged(slot, reason=REGISTRY_UNREACHABLE, served=served, target=None)

    def in_step(self, slot: Slot) -> None:
        previous = self.slots.pop(slot, None)
        if previous is not None:
            _forget(slot, previous.reason)

    def describe(self) -> list[str]:
        return [d.describe(slot) for slot, d in sorted(self.slots.items())]


def _forget(slot: Slot, reason: str) -> None:
    with contextlib.suppress(KeyError):
        TARGET_MISMATCH.remove(slot[0], slot[1], reason)
