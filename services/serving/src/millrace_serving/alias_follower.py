"""Keeps the versions this process serves in step with the registry: each served alias
and each pinned version, read from the registry (authoritative) at start-up and on every
resync, and moved by ``model-published`` events in between. Its sibling
``traffic_follower`` does the same for the models' traffic policies.

At start, the slots the on-disk cache holds are served before the registry is asked; the
registry then confirms them (or moves them, or unloads the ones it no longer has). While
the registry is away, every try is repeated with backoff and jitter (up to
``retry_max_delay``), so serving is back in step within a few seconds of its return."""

from __future__ import annotations

import asyncio
import random
import time
from functools import partial

import structlog
from millrace_common.contracts import AliasTarget, ModelPublished

from millrace_serving.adapters.registry import Registry
from millrace_serving.divergence import Slot
from millrace_serving.pinning import is_pinned, pinned_alias, refusal
from millrace_serving.swap import PERMANENT, Outcome, Swapper

log = structlog.get_logger(__name__)


class AliasFollower:
    def __init__(
        self, *, swapper: Swapper, registry: Registry, pins: list[tuple[str, int]] | None = None
    ) -> None:
        self.swapper = swapper
        self.registry = registry
        self.pins = list(pins or [])
        """(model, version) pairs served as themselves, from MILLRACE_SERVING_VERSIONS."""
        self.expected: set[tuple[str, str]] = set()
        """The (model, alias) pairs the registry said exist at the last sync."""
        self.refused: dict[tuple[str, str], str] = {}
        """Why a pinned (model, slot) was not loaded, from its registry status."""
        self.synced = False
        self.restored: set[Slot] = set()
        """Slots loaded from the cache that the registry has not confirmed yet."""
        self.registry_error: str | None = None
        """Why the registry did not answer the last sync (None: it answered)."""
        self.registry_away_since: float | None = None

    async def restore(self) -> int:
        """Serve what the cache holds, with no network; return how many slots."""
        pinned = {(name, pinned_alias(version)) for name, version in self.pins}
        restored = await asyncio.to_thread(self.swapper.restore, pinned=pinned)
        self.restored = {(t.name, t.alias) for t in restored}
        self.expected |= self.restored
        if restored:
            log.info(
                "models_restored",
                source="cache",
                models=sorted(f"{t.name}:{t.alias}:v{t.version}" for t in restored),
            )
        return len(restored)

    async def on_event(self, event: ModelPublished) -> Outcome:
        outcome = await self.swapper.apply(AliasTarget.from_event(event))
        log.info(
            "model_published_handled",
            model=event.name,
            alias=event.alias,
            version=event.version,
            outcome=str(outcome),
        )
        return outcome

    async def sync_from_registry(self) -> None:
        served = self.swapper.served
        names = sorted(served.models) or await self.registry.model_names()
        expected: set[tuple[str, str]] = set()
        for name in names:
            for alias in sorted(served.aliases):
                fetch = partial(self.registry.alias_target, name, alias)
                outcome = await self.swapper.reconcile(name=name, alias=alias, fetch=fetch)
                if outcome is not Outcome.ABSENT:
                    expected.add((name, alias))
        for name, version in self.pins:
            if await self.load_version(name=name, version=version) is not Outcome.ABSENT:
                expected.add((name, pinned_alias(version)))
        for slot in sorted(self.restored - expected):  # the registry no longer has them
            await self.swapper.unload(name=slot[0], alias=slot[1])
        self.restored.clear()
        self.expected = expected
        self._answered()
        self.synced = True

    def _answered(self) -> None:
        if self.registry_error is not None:
            log.info("registry_reachable", away_seconds=round(self._away_for(), 1))
        self.registry_error = None
        self.registry_away_since = None

    def _unreachable(self, exc: Exception) -> None:
        if self.registry_error is None:
            self.registry_away_since = time.monotonic()
        self.registry_error = type(exc).__name__
        for (name, alias), model in self.swapper.slots.items():
            if self.swapper.covers(name, alias):
                self.swapper.divergence.unconfirmed((name, alias), served=model.version)

    def _retryable(self) -> bool:
        """A slot is off its target for a reason a later try may fix (its artifact or the
        store away); a bad digest or a failed check waits for the registry to move."""
        return any(d.reason not in PERMANENT for d in self.swapper.divergence.slots.values())

    def _away_for(self) -> float:
        since = self.registry_away_since
        return 0.0 if since is None else time.monotonic() - since

    async def load_version(self, *, name: str, version: int) -> Outcome:
        """Pin ``version`` if the registry has it and its status allows serving it."""
        found = await self.registry.registered_version(name, version)
        if found is None:
            return Outcome.ABSENT
        slot = (name, pinned_alias(version))
        refused = refusal(found)
        if refused is not None:
            self.refused[slot] = refused.message
            return self.swapper.refuse(found.target, reason=refused.reason, message=refused.message)
        self.refused.pop(slot, None)
        return await self.swapper.pin(found.target)

    async def reload(self, *, name: str) -> dict[str, str]:
        """Re-read every alias of ``name`` this process serves from the registry."""
        aliases = {a for n, a in self.swapper.extra if n == name and not is_pinned(a)}
        aliases |= set(self.swapper.served.aliases)
        outcomes = {}
        for alias in sorted(aliases):
            fetch = partial(self.registry.alias_target, name, alias)
            outcomes[alias] = str(await self.swapper.reconcile(name=name, alias=alias, fetch=fetch))
        return outcomes

    async def sync_until_done(self, *, max_delay: float = 5.0) -> None:
        """The first sync: retry with backoff and jitter until the registry answers."""
        delay = 0.2
        while True:
            if await self.try_sync():
                log.info("registry_synced", models=sorted(f"{n}:{a}" for n, a in self.expected))
                return
            await asyncio.sleep(_jittered(delay))
            delay = min(max_delay, delay * 2)

    async def try_sync(self) -> bool:
        """One sync; False (logged, and the slots served marked unconfirmed) when the
        registry did not answer."""
        try:
            await self.sync_from_registry()
            return True
        except Exception as exc:  # noqa: BLE001 - unreachable or 5xx: try again
            first = self.registry_error is None
            self._unreachable(exc)
            (log.warning if first else log.debug)("registry_unreachable", error=repr(exc))
            return False

    async def resync_forever(self, *, interval: float, max_delay: float = 3.0) -> None:
        """Resync every ``interval`` seconds while in step; while the registry is away or
        a slot is off its target, sooner: backoff with jitter from 0.2 s to ``max_delay``."""
        delay = 0.2
        while True:
            behind = self.registry_error is not None or self._retryable()
            await asyncio.sleep(_jittered(min(delay, interval)) if behind else interval)
            delay = min(max_delay, delay * 2) if behind else 0.2
            await self.try_sync()

    def readiness(self) -> tuple[bool, str]:
        """Ready while every slot expected can answer, whether from the registry's target
        or the last-known-good (the cache, or the old version when a new one failed): the
        detail then names each divergence from the registry and why. Not ready while an
        expected slot has no model at all, or before the registry has answered once and
        the cache held nothing."""
        if not self.synced and not (self.restored and self.registry_error is not None):
            if self.registry_error is None:
                return False, "waiting for the registry"
            away = f"{self.registry_error}, {self._away_for():.0f} s"
            return False, f"waiting for the registry ({away}); the cache held no model"
        slots = self.swapper.slots
        missing = [(n, a) for n, a in sorted(self.expected) if slots.find(n, a) is None]
        if not missing:
            return True, "; ".join([f"{len(slots)} model(s) loaded", *self._diverging()])
        waiting = [f"{n}:{a}" for n, a in missing if (n, a) not in self.refused]
        refused = [
            f"{n}:{a} refused: {self.refused[n, a]}" for n, a in missing if (n, a) in self.refused
        ]
        parts = ([f"not loaded yet: {', '.join(waiting)}"] if waiting else []) + refused
        return False, "; ".join(parts + self._diverging())

    def _diverging(self) -> list[str]:
        parts = []
        if self.registry_error is not None:
            source = "serving from the local cache, " if self.restored else ""
            parts.append(
                f"{source}the registry is unreachable ({self.registry_error}, "
                f"{self._away_for():.0f} s)"
            )
        described = self.swapper.divergence.describe()
        if described:
            parts.append(f"differs from the registry: {', '.join(described)}")
        return parts


def _jittered(delay: float) -> float:
    """``delay`` ± 25%, so pods that lost the registry together do not retry together."""
    return delay * random.uniform(0.75, 1.25)
